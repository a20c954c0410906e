"""The service's pool of raster handles (civicmap.serve.deps): bounded, reused, never shared."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rasterio
from rasterio.transform import from_origin

from civicmap.serve.deps import _DatasetPool


def test_at_most_max_open_handles_each_used_by_one_thread(tmp_path):
    path = tmp_path / "r.tif"
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint8", "crs": "EPSG:3857"}
    with rasterio.open(path, "w", **profile, transform=from_origin(0, 0, 10, 10)) as dst:
        dst.write(np.ones((1, 64, 64), "uint8"))
    pool = _DatasetPool(path, max_open=2)
    lock = threading.Lock()
    busy: set[int] = set()
    seen: set[int] = set()
    most = 0

    def use(_: int) -> None:
        nonlocal most
        with pool.dataset() as ds:
            with lock:
                assert id(ds) not in busy  # no handle is shared by two threads at once
                busy.add(id(ds))
                seen.add(id(ds))
                most = max(most, len(busy))
            assert ds.read(1, window=((0, 1), (0, 1)))[0, 0] == 1
            time.sleep(0.01)
            with lock:
                busy.discard(id(ds))

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(use, range(40)))
    assert most == 2 and len(seen) == 2  # 8 threads, 2 handles: opened once each, then reused
    pool.close()
