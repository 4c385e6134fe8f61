"""Long operations as plain functions taking a progress callback and a cancel event: generate,
archive, convert, phantom sets, FID runs, study build, TSTR, export. The CLI drives them with a
tqdm bar, the GUI from a worker thread: one implementation, two faces."""
