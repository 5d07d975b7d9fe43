"""archive: read a team's upload safely and build the archives of jobs.

read_upload(data) accepts tar, tar.gz and zip (told apart by their bytes,
not their names) and returns {relative path: bytes} of its regular files.
Anything that could point outside the archive is refused with ArchiveError:
absolute paths, "..", links, devices; so are too many files or bytes. When
every file sits under one top directory (a packed folder), that directory is
dropped. pack(files) makes the canonical tar.gz the database stores and jobs
receive (fixed mtimes and owners, sorted names).
"""
import gzip
import io
import posixpath
import tarfile
import zipfile

MAX_FILES = 500
MAX_BYTES = 16 << 20


class ArchiveError(Exception):
    pass


def _check_name(name, is_dir=False):
    n = name.replace("\\", "/")
    while n.startswith("./"):
        n = n[2:]
    n = n.rstrip("/")
    if is_dir and n in ("", "."):  # the archive's own root
        return n
    parts = n.split("/")
    if not n or n.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in n:
        raise ArchiveError(f"archive entry '{name}': not a plain relative path")
    return n


class _Collector:
    def __init__(self):
        self.files = {}
        self.total = 0

    def add(self, name, data):
        n = _check_name(name)
        if n in self.files:
            raise ArchiveError(f"archive entry '{name}' appears twice")
        self.total += len(data)
        if len(self.files) >= MAX_FILES or self.total > MAX_BYTES:
            raise ArchiveError(f"archive holds more than {MAX_FILES} files or {MAX_BYTES >> 20} MiB")
        self.files[n] = data


def _read_tar(data, c):
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
            for m in t:
                if m.isdir():
                    _check_name(m.name, True)
                    continue
                if not m.isfile():
                    raise ArchiveError(f"archive entry '{m.name}': only regular files and "
                                       "directories are accepted (no links or devices)")
                if m.size > MAX_BYTES:
                    raise ArchiveError(f"archive entry '{m.name}' is over {MAX_BYTES >> 20} MiB")
                c.add(m.name, t.extractfile(m).read())
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as e:
        raise ArchiveError(f"not a readable tar archive: {e}") from None


def _read_zip(data, c):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                if info.is_dir():
                    _check_name(info.filename, True)
                    continue
                # a symlink in a zip is a file whose Unix mode says S_IFLNK
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    raise ArchiveError(f"archive entry '{info.filename}': only regular files "
                                       "and directories are accepted")
                if info.file_size > MAX_BYTES:
                    raise ArchiveError(f"archive entry '{info.filename}' is over "
                                       f"{MAX_BYTES >> 20} MiB")
                c.add(info.filename, z.read(info))
    except (zipfile.BadZipFile, OSError, RuntimeError) as e:
        raise ArchiveError(f"not a readable zip archive: {e}") from None


def read_upload(data):
    c = _Collector()
    if data[:4] == b"PK\x03\x04":
        _read_zip(data, c)
    else:
        _read_tar(data, c)
    files = c.files
    if not files:
        raise ArchiveError("the archive holds no files")
    tops = {n.split("/", 1)[0] for n in files}
    if len(tops) == 1 and all("/" in n for n in files):
        top = tops.pop() + "/"
        files = {n[len(top):]: d for n, d in files.items()}
    return files


def pack(files, prefix=""):
    """tar.gz of files ({path: bytes}), each under prefix."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as t:
            add_files(t, files, prefix)
    return out.getvalue()


def add_files(t, files, prefix=""):
    for name in sorted(files):
        data = files[name]
        info = tarfile.TarInfo(posixpath.join(prefix, name) if prefix else name)
        info.size = len(data)
        info.mode = 0o755 if name.endswith(".sh") else 0o644
        info.mtime = 1
        t.addfile(info, io.BytesIO(data))


def unpack(blob):
    """The files of a tar.gz made by pack, as they were given to it."""
    c = _Collector()
    _read_tar(blob, c)
    return c.files
