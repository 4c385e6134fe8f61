#!/usr/bin/env bash
# The phantom train-on-synthetic, test-on-real experiment, end to end on a CPU, from the
# command line only: a small PGGAN and a steering classifier trained on one set of phantoms,
# an LCO archive drawn from the GAN, and `cxrgan tstr` on a second, disjoint set of phantoms
# as the "real" data (so neither the GAN nor the steering classifier ever saw a test patient).
#   scripts/tstr_phantom_demo.sh [WORK_DIR]        (default: tstr_phantom_demo/)
# Each step resumes or is skipped when its output exists. Not clinical data.
set -euo pipefail
work="${1:-tstr_phantom_demo}"
cxrgan="${CXRGAN:-cxrgan}"
findings="Cardiomegaly=0.35,Effusion=0.35,Pneumothorax=0.3"
mkdir -p "$work"
cd "$work"

[ -d gan_data ] || "$cxrgan" phantom --n 1200 --size 64 --seed 22 --images-per-patient 1 --prevalence "$findings" \
    --out gan_data
[ -d real ] || "$cxrgan" phantom --n 1000 --size 64 --seed 21 --images-per-patient 1 --prevalence "$findings" \
    --out real

cat > gan32.toml <<'TOML'
# A small PGGAN up to 32 px, sized for a CPU (about 90,000 images).
name = "phantom32-tstr"
latent_size = 64
channels = [64, 64, 64, 32]
images_first = 10000
images_fade = 10000
images_stable = 10000
images_final_extra = 20000
checkpoint_every = 10000
sample_every = 20000
log_every = 2000
sample_count = 16

[batch_sizes]
4 = 32
8 = 32
16 = 32
32 = 32
TOML
[ -f gan.safetensors ] || {
    "$cxrgan" train gan32.toml --data gan_data --run-dir gan_run ${GAN_STOP_AT:+--stop-at "$GAN_STOP_AT"}
    "$cxrgan" export-run gan_run --out gan.safetensors
}
[ -f steer.safetensors ] || "$cxrgan" classifier train --data gan_data \
    --labels gan_data/Data_Entry_phantom.csv --arch densenet-small --input-size 32 \
    --epochs 10 --name steer --out steer.safetensors
"$cxrgan" archive --model gan.safetensors --classifier steer.safetensors \
    --distribution gan_data/Data_Entry_phantom.csv --n 600 --steps 100 --batch-size 32 \
    --out archive

cat > experiment.toml <<'TOML'
real_images = "real"
real_labels = "real/Data_Entry_phantom.csv"
synthetic_images = "archive"
labels = ["Cardiomegaly", "Effusion", "Pneumothorax"]
arms = ["real", "synthetic", "mixed", "scarce"]
mix_ratio = 0.75
scarce_fractions = [0.1, 0.25, 0.5]
test_fraction = 0.2
seed = 0
bootstrap = 1000

[classifier]
architecture = "densenet-small"
input_size = 32
epochs = 15
batch_size = 32
TOML
"$cxrgan" tstr experiment.toml
