"""``cxrgan audit``: is a generated radiograph too close to a training patient?"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrgan_desktop.cli.common import (
    UserError,
    add_device_option,
    comma_list,
    existing_path,
    path_or_name,
    resolve_device_option,
)

AUDIT_EXAMPLES = """examples:
  cxrgan audit --train phantoms/ --labels phantoms/Data_Entry_phantom.csv \\
      --synthetic model:demo-phantom-64 --n 500 --held-out unseen_phantoms/ \\
      --reid my-reid --out audit/
  cxrgan audit --train images/ --synthetic archive/ --held-out runs/run-001/ \\
      --spaces pixels --out audit/         held-out images that the run recorded

Then leave the flagged images out: cxrgan archive|study build|generate ... --exclude-flagged
audit/audit.csv
"""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from cxrgan_desktop.tasks.audit_file import DEFAULT_ALPHA, DEFAULT_K, DEFAULT_PIXEL_SIZE

    p = sub.add_parser(
        "audit", help="memorisation audit: synthetic images too close to training patients",
        description="For every synthetic image, find its nearest training images in each "
        "feature space (pixels: normalised cross-correlation; reid: a patient "
        "re-identification embedding) and flag it when it is closer to the training set than "
        "all but ALPHA of held-out real patients are. Writes audit.csv (most at risk first), "
        "neighbours.csv, summary.json and a contact sheet of the closest pairs. Training and "
        "held-out features are cached, so a rerun costs only the synthetic side.",
        epilog=AUDIT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=existing_path, required=True,
                   help="the training images (folder, searched recursively)")
    p.add_argument("--labels", type=existing_path, default=None,
                   help="the training set's ChestX-ray14 Data_Entry CSV: gives each image its "
                        "patient (else ChestX-ray14 file names, else one patient per image)")
    p.add_argument("--synthetic", type=path_or_name, required=True,
                   help="a folder of synthetic images, or model:NAME (installed name or file)")
    p.add_argument("--n", type=int, default=None,
                   help="images to generate from model:NAME, or the first N of a folder")
    p.add_argument("--seed", type=int, default=0,
                   help="latent seed of model:NAME (the images 'cxrgan generate --seed' makes)")
    p.add_argument("--held-out", type=existing_path, required=True,
                   help="real images never trained on (other patients): a folder, or the "
                        "training run folder whose held_out.json names the images it kept "
                        "out (cxrgan train --hold-out-patients)")
    p.add_argument("--spaces", type=comma_list, default=("pixels", "reid"),
                   help="feature spaces, comma-separated: pixels, reid, inception (default: "
                        "pixels,reid; inception needs the FID weights)")
    p.add_argument("--reid", default=None, metavar="MODEL",
                   help="re-identification model (installed name or .safetensors file; "
                        "cxrgan reid train makes one); needed for the reid space")
    p.add_argument("--k", type=int, default=DEFAULT_K,
                   help=f"nearest training images kept per synthetic image (default: "
                        f"{DEFAULT_K})")
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help="flag a synthetic image closer to the training set than all but "
                        f"this fraction of held-out images (default: {DEFAULT_ALPHA} = "
                        f"{DEFAULT_ALPHA * 100:g} %%)")
    p.add_argument("--pixel-size", type=int, default=DEFAULT_PIXEL_SIZE,
                   help=f"side of the pixel space's images (default: {DEFAULT_PIXEL_SIZE})")
    p.add_argument("--inception-weights", type=existing_path, default=None, metavar="FILE",
                   help="FID Inception weights for the inception space (default: the "
                        "installed ones, see cxrgan fid-weights)")
    p.add_argument("--allow-unverified-weights", action="store_true",
                   help="accept Inception weights whose SHA-256 is not the published one")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    add_device_option(p)
    p.add_argument("--out", type=Path, required=True, help="the audit folder to write")
    p.set_defaults(func=_cmd_audit)


def _cmd_audit(args: argparse.Namespace) -> int:
    from cxrgan_desktop.cli.progress import run_job
    from cxrgan_desktop.tasks.audit import AuditOptions, run_audit
    from cxrgan_desktop.tasks.audit_file import AuditFileError

    device = resolve_device_option(args.device)
    spaces = tuple(args.spaces) if args.reid or "reid" not in args.spaces else tuple(
        s for s in args.spaces if s != "reid")
    if spaces != tuple(args.spaces):
        print("cxrgan audit: no --reid model given: auditing without the reid space "
              "(train one with `cxrgan reid train`)")
    options = AuditOptions(
        train_dir=args.train, out_dir=args.out, synthetic=args.synthetic,
        held_out=args.held_out, labels_csv=args.labels, n=args.n, seed=args.seed,
        spaces=spaces, reid_model=args.reid, k=args.k, alpha=args.alpha,
        pixel_size=args.pixel_size, device=str(device), batch_size=args.batch_size,
        inception_weights=args.inception_weights,
        allow_unverified_weights=args.allow_unverified_weights)
    try:
        options.check()
        report = run_job(lambda progress, cancel: run_audit(options, progress, cancel),
                         None, "", "audit", f"nothing half-written in {args.out}; cached "
                         "features are kept for the next run")
    except (ValueError, AuditFileError) as error:
        raise UserError(str(error)) from error
    summary = report.summary
    print(f"audited {len(report.rows)} synthetic images against {summary['train']['images']} "
          f"training images ({summary['train']['patients']} patients); held out: "
          f"{summary['held_out']['images']} images of {summary['held_out']['patients']} "
          "patients")
    for space, info in summary["spaces"].items():
        print(f"  {space}: {info['flagged']} flagged (similarity > "
              f"{info['threshold_similarity']:.4f}; {info['distinct_training_patients_matched']}"
              f" training patients matched)")
    print(f"flagged: {summary['flagged']} of {len(report.rows)}; distinct training patients "
          f"matched: {summary['distinct_training_patients_matched']}")
    for note in summary.get("notes", []):
        print(f"note: {note}")
    for skipped in summary["synthetic"]["skipped"]:
        print(f"skipped: {skipped}")
    print(f"wrote {report.folder / 'audit.csv'}, neighbours.csv, summary.json, "
          "contact_sheet.png/.pdf")
    return 0
