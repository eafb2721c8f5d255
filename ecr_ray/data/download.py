"""`ecr-ray data download`: fetch the official raw data into a data directory, with sha256 checks.

Hashes are pinned where we hold a byte-identical copy of the source file; the full ReDial train split inside the
official zip has no pinned hash here, so its hash is printed and written to `<data_dir>/SHA256SUMS` for the user
to compare. Offline, the command says exactly what to place where and exits with status 2.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REDIAL_ZIP = "https://github.com/ReDialData/website/raw/data/redial_dataset.zip"
LLMKB = "https://raw.githubusercontent.com/BitbanChou/LLMKB/a3364e7bf7894b4f33d4ad519e58d1c726dc5538/data"


@dataclass(frozen=True)
class Source:
    target: str
    """Path inside the data directory."""
    url: str
    sha256: str | None
    member: str | None = None
    """File inside a zip archive."""


SOURCES = [
    Source(
        "redial/test_data.jsonl",
        REDIAL_ZIP,
        "d7781750787d104ac005e829cc7e6277d25b14644a223b0c2445aaaded6b19ac",
        "test_data.jsonl",
    ),
    Source("redial/train_data.jsonl", REDIAL_ZIP, None, "train_data.jsonl"),
    Source("redial/movies/movies_with_mentions.csv", REDIAL_ZIP, None, "movies_with_mentions.csv"),
    Source(
        "redial/kg/dbpedia_subkg.json",
        f"{LLMKB}/redial/dbpedia_subkg.json",
        "3e2c16d1780ce63316e79c5fab40e8f35f2750146de717ae4aed8d76d59bd781",
    ),
    Source(
        "redial/kg/entity2id.json",
        f"{LLMKB}/redial/entity2id.json",
        "63353aca481bc9558b502f91cb98f6fa26438796fdd7e0bc06b5a1532126e8b5",
    ),
    Source(
        "redial/kg/relation2id.json",
        f"{LLMKB}/redial/relation2id.json",
        "43d6e261ec5a70bfac9db28aa8bd53f1140597816eb60d2c9be555a3381e2578",
    ),
    Source(
        "redial/kg/item_ids.json",
        f"{LLMKB}/redial/item_ids.json",
        "a36efa4ad81f487676e9861f25ec42166e72bfac6eab89500041b1c749ac1a08",
    ),
    Source(
        "inspired/train_data_dbpedia.jsonl",
        f"{LLMKB}/inspired/train_data_dbpedia.jsonl",
        "f185878d61f4cf95036711612befbec2e587b42fcb7bf855fba3af08016e7743",
    ),
    Source(
        "inspired/valid_data_dbpedia.jsonl",
        f"{LLMKB}/inspired/valid_data_dbpedia.jsonl",
        "8cde8cf7f55d4f2a71f1c7c8e4b921ca9caaee615999fd3728c7bea214b01839",
    ),
    Source(
        "inspired/entity2id.json",
        f"{LLMKB}/inspired/entity2id.json",
        "6ea0f59be9da55a78e2b48eff35928bf62a7232d143eb905d350ed38268583d2",
    ),
    Source(
        "inspired/dbpedia_subkg.json",
        f"{LLMKB}/inspired/dbpedia_subkg.json",
        "33245f36bdded33368a7988fe340dd3cb4bc0d8156a6afee56226741cb647a19",
    ),
    Source(
        "inspired/relation2id.json",
        f"{LLMKB}/inspired/relation2id.json",
        "6a36fdf987d0597e8346c6d9a0e6333b6d3aea67cfe03bebce0114a0deaabda1",
    ),
    Source(
        "inspired/item_ids.json",
        f"{LLMKB}/inspired/item_ids.json",
        "6e300dc6b89ab483f1474ee550e94709cdbcd09354928546fa32dc3b48fe12c1",
    ),
]

MANUAL = """\
These files have no public direct-download source and must be placed by hand:
  redial/kg/redial_movieid2entity.json  ReDial movieId -> {name, dbpedia, entity_id} (UniCRS/LATTE movie maps)
  redial/movies/id2info.json            movie metadata (iEvaLM-CRS)
  reviews/imdb_reviews_ecr.jsonl        ECR-style review samples (ECR's release)
  emotions/redial_llm_labels.jsonl      LLM emotion labels (or make them: `ecr-ray label_emotions`)
"""


class DownloadError(RuntimeError):
    pass


def _fetch(url: str, timeout: float) -> bytes:
    import requests

    try:
        r = requests.get(url, timeout=timeout)
        r.raise_for_status()
    except requests.RequestException as e:
        raise DownloadError(f"cannot fetch {url}: {type(e).__name__}") from None
    return r.content


def download(data_dir: Path, force: bool = False, timeout: float = 60.0, out=sys.stdout) -> list[str]:
    """Fetch every source missing from `data_dir` (all with `force`); verify pinned hashes. Returns written paths."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[str, bytes] = {}
    written, sums = [], []
    for src in SOURCES:
        target = data_dir / src.target
        if target.exists() and not force:
            print(f"have   {src.target}", file=out)
            continue
        if src.url not in cache:
            print(f"fetch  {src.url}", file=out)
            cache[src.url] = _fetch(src.url, timeout)
        blob = cache[src.url]
        if src.member:
            with zipfile.ZipFile(io.BytesIO(blob)) as z:
                name = next((n for n in z.namelist() if n.endswith(src.member)), None)
                if name is None:
                    raise DownloadError(f"{src.url}: archive has no {src.member}")
                blob = z.read(name)
        digest = hashlib.sha256(blob).hexdigest()
        if src.sha256 and digest != src.sha256:
            raise DownloadError(f"{src.target}: sha256 mismatch (got {digest}, expected {src.sha256}); not written")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        sums.append(f"{digest}  {src.target}")
        written.append(src.target)
        print(f"wrote  {src.target}  sha256 {digest[:16]}…{'' if src.sha256 else ' (no pinned hash)'}", file=out)
    if sums:
        with open(data_dir / "SHA256SUMS", "a") as f:
            f.write("\n".join(sums) + "\n")
    return written


def offline_help(data_dir: Path) -> str:
    lines = [f"Could not reach the download sources. Place the files by hand under {data_dir}:"]
    for src in SOURCES:
        where = f"{src.member} from {src.url}" if src.member else src.url
        lines.append(f"  {src.target:42s} <- {where}")
    return "\n".join(lines) + "\n" + MANUAL
