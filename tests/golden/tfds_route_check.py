"""Checks kacjax-prepare against TFDS's own builders, by hand, in an environment with TensorFlow.

  python -m venv /tmp/tf       # LSUN's builder needs the older set: see docs/data.md, "The TFDS route"
  /tmp/tf/bin/pip install tensorflow-cpu tensorflow-datasets importlib_resources pillow
  mkdir /tmp/src && python -c "import sys; sys.path.insert(0, 'tests'); import official_fakes as f; \\
      f.write_cifar_binary('/tmp/src'); f.write_celeba('/tmp/src'); f.write_lsun('/tmp/src')"  # fake files
  for n in cifar10 celeb_a lsun/bedroom; do kacjax-prepare $n --source /tmp/src --data_dir /tmp/kacjax; done
  /tmp/tf/bin/python tests/golden/tfds_route_check.py /tmp/src /tmp/tfds /tmp/kacjax cifar10 celeb_a

TFDS's builders read the files from the manual directory (their checksum check, which fake files
fail, is switched off here only); then both folders are read record by record. Prints, per split,
whether every record is equal in order (decoded pixels, labels, ids, annotations) and whether the
stored image bytes are identical, and how dataset_info.json and features.json differ. Not run by CI
(no TensorFlow there).
"""

import io
import json
import sys

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import download_manager

DATASETS = {"cifar10": ("3.0.2", ("train", "test")), "celeb_a": ("2.1.0", ("train", "validation", "test")),
            "lsun/bedroom": ("3.1.0", ("train", "validation"))}


def records(path, split):
    source = tfds.builder_from_directory(path).as_data_source(
        split=split, decoders={"image": tfds.decode.SkipDecoding()}
    )
    return [source[i] for i in range(len(source))]


def main(source_dir, tfds_dir, kacjax_dir, *names):
    download_manager.DownloadManager._register_or_validate_checksums = lambda self, *a, **k: None
    for name in names or DATASETS:
        version, splits = DATASETS[name]
        tfds.builder(name, data_dir=tfds_dir, file_format="array_record").download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=source_dir)
        )
        ours, theirs = f"{kacjax_dir}/{name}/{version}", f"{tfds_dir}/{name}/{version}"
        for split in splits:
            a, b = records(theirs, split), records(ours, split)
            equal = len(a) == len(b) and all(
                x.keys() == y.keys()
                and all(
                    np.array_equal(*(np.asarray(PIL.Image.open(io.BytesIO(r[k]))) for r in (x, y)))
                    if k == "image"
                    else str(x[k]) == str(y[k])
                    for k in x
                )
                for x, y in zip(a, b)
            )
            same_bytes = all(x["image"] == y["image"] for x, y in zip(a, b))
            print(f"{name} {split}: {len(a)} records, equal in order: {equal}, "
                  f"image bytes identical: {same_bytes}")
        info, features = (
            [json.load(open(f"{p}/{f}.json")) for p in (theirs, ours)] for f in ("dataset_info", "features")
        )
        differ = sorted(k for k in info[0] | info[1] if info[0].get(k) != info[1].get(k))
        print(
            f"{name} dataset_info.json differs in {differ}; features.json equal: {features[0] == features[1]}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:4])
