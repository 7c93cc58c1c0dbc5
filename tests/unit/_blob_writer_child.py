"""Child process for tests/unit/test_blobs_filesystem.py (not a test module).

Usage: python _blob_writer_child.py ROOT SIZE SEED MODE
  MODE=kill  write half of the blob, print "HALF", then hang until killed
  MODE=full  write the whole blob, print "READY", wait for a stdin line, commit,
             print the digest
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import anyio
import anyio.to_thread

from graft.blobs import FilesystemBlobStore

CHUNK = 64 * 1024


async def main(root: Path, size: int, seed: int, mode: str) -> None:
    data = random.Random(seed).randbytes(size)
    store = FilesystemBlobStore(root)
    async with store.writer() as w:
        half_reported = False
        for off in range(0, size, CHUNK):
            await w.write(data[off : off + CHUNK])
            if mode == "kill" and not half_reported and w.size >= size // 2:
                print("HALF", flush=True)
                half_reported = True
                await anyio.sleep_forever()
        print("READY", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        print(await w.commit(), flush=True)


if __name__ == "__main__":
    root, size, seed, mode = sys.argv[1:]
    anyio.run(main, Path(root), int(size), int(seed), mode)
