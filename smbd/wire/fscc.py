"""[MS-FSCC] information classes: 2.4 file information, 2.4 directory enumeration
entries, 2.5 file system information, 2.6 file attributes, FILETIME helpers and a small
[MS-DTYP] 2.4.6 self-relative SECURITY_DESCRIPTOR builder.

Encoders take plain integers (FILETIMEs, sizes, attribute bits) and return bytes; decoders
(the SET_INFO side) check lengths and raise ParseError(INFO_LENGTH_MISMATCH) for short
buffers and ParseError(INVALID_PARAMETER) for inconsistent contents.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

from smbd.wire._util import Buffer, decode_utf16, encode_utf16, pad8
from smbd.wire.errors import ParseError
from smbd.wire.status import NTStatus


class FileAttributes(IntFlag):
    """[MS-FSCC] 2.6 File Attributes."""

    READONLY = 0x00000001
    HIDDEN = 0x00000002
    SYSTEM = 0x00000004
    DIRECTORY = 0x00000010
    ARCHIVE = 0x00000020
    NORMAL = 0x00000080
    TEMPORARY = 0x00000100
    SPARSE_FILE = 0x00000200
    REPARSE_POINT = 0x00000400
    COMPRESSED = 0x00000800
    OFFLINE = 0x00001000
    NOT_CONTENT_INDEXED = 0x00002000
    ENCRYPTED = 0x00004000
    INTEGRITY_STREAM = 0x00008000
    NO_SCRUB_DATA = 0x00020000
    RECALL_ON_OPEN = 0x00040000
    PINNED = 0x00080000
    UNPINNED = 0x00100000
    RECALL_ON_DATA_ACCESS = 0x00400000


class FileInfoClass(IntEnum):
    """[MS-FSCC] 2.4 FILE_INFORMATION_CLASS values."""

    FileDirectoryInformation = 1
    FileFullDirectoryInformation = 2
    FileBothDirectoryInformation = 3
    FileBasicInformation = 4
    FileStandardInformation = 5
    FileInternalInformation = 6
    FileEaInformation = 7
    FileAccessInformation = 8
    FileNameInformation = 9
    FileRenameInformation = 10
    FileLinkInformation = 11
    FileNamesInformation = 12
    FileDispositionInformation = 13
    FilePositionInformation = 14
    FileFullEaInformation = 15
    FileModeInformation = 16
    FileAlignmentInformation = 17
    FileAllInformation = 18
    FileAllocationInformation = 19
    FileEndOfFileInformation = 20
    FileAlternateNameInformation = 21
    FileStreamInformation = 22
    FilePipeInformation = 23
    FilePipeLocalInformation = 24
    FilePipeRemoteInformation = 25
    FileCompressionInformation = 28
    FileObjectIdInformation = 29
    FileQuotaInformation = 32
    FileReparsePointInformation = 33
    FileNetworkOpenInformation = 34
    FileAttributeTagInformation = 35
    FileIdBothDirectoryInformation = 37
    FileIdFullDirectoryInformation = 38
    FileValidDataLengthInformation = 39
    FileShortNameInformation = 40
    FileSfioReserveInformation = 44
    FileHardLinkInformation = 46
    FileNormalizedNameInformation = 48
    FileIdGlobalTxDirectoryInformation = 50
    FileStandardLinkInformation = 54
    FileIdInformation = 59
    FileIdExtdDirectoryInformation = 60
    FileIdExtdBothDirectoryInformation = 63
    FileDispositionInformationEx = 64
    FileRenameInformationEx = 65
    FileStatInformation = 68
    FileStatLxInformation = 70


class FsInfoClass(IntEnum):
    """[MS-FSCC] 2.5 FS_INFORMATION_CLASS values."""

    FileFsVolumeInformation = 1
    FileFsLabelInformation = 2
    FileFsSizeInformation = 3
    FileFsDeviceInformation = 4
    FileFsAttributeInformation = 5
    FileFsControlInformation = 6
    FileFsFullSizeInformation = 7
    FileFsObjectIdInformation = 8
    FileFsDriverPathInformation = 9
    FileFsVolumeFlagsInformation = 10
    FileFsSectorSizeInformation = 11


class FsAttributes(IntFlag):
    """[MS-FSCC] 2.5.1 FileSystemAttributes."""

    CASE_SENSITIVE_SEARCH = 0x00000001
    CASE_PRESERVED_NAMES = 0x00000002
    UNICODE_ON_DISK = 0x00000004
    PERSISTENT_ACLS = 0x00000008
    FILE_COMPRESSION = 0x00000010
    VOLUME_QUOTAS = 0x00000020
    SUPPORTS_SPARSE_FILES = 0x00000040
    SUPPORTS_REPARSE_POINTS = 0x00000080
    SUPPORTS_REMOTE_STORAGE = 0x00000100
    VOLUME_IS_COMPRESSED = 0x00008000
    SUPPORTS_OBJECT_IDS = 0x00010000
    SUPPORTS_ENCRYPTION = 0x00020000
    NAMED_STREAMS = 0x00040000
    READ_ONLY_VOLUME = 0x00080000
    SEQUENTIAL_WRITE_ONCE = 0x00100000
    SUPPORTS_TRANSACTIONS = 0x00200000
    SUPPORTS_HARD_LINKS = 0x00400000
    SUPPORTS_EXTENDED_ATTRIBUTES = 0x00800000
    SUPPORTS_OPEN_BY_FILE_ID = 0x01000000
    SUPPORTS_USN_JOURNAL = 0x02000000
    SUPPORTS_INTEGRITY_STREAMS = 0x04000000
    SUPPORTS_BLOCK_REFCOUNTING = 0x08000000
    SUPPORTS_SPARSE_VDL = 0x10000000


FILE_DEVICE_DISK: Final = 0x00000007
FILE_DEVICE_IS_MOUNTED: Final = 0x00000020
FILE_REMOTE_DEVICE: Final = 0x00000010

SSINFO_FLAGS_ALIGNED_DEVICE: Final = 0x00000001
SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE: Final = 0x00000002
SSINFO_FLAGS_NO_SEEK_PENALTY: Final = 0x00000004
SSINFO_FLAGS_TRIM_ENABLED: Final = 0x00000008
SSINFO_OFFSET_UNKNOWN: Final = 0xFFFFFFFF

# --- FILETIME -------------------------------------------------------------------------

FILETIME_UNIX_EPOCH: Final = 116_444_736_000_000_000
"""FILETIME (100 ns units since 1601-01-01 UTC) of 1970-01-01."""
FILETIME_NO_CHANGE: Final = 0
FILETIME_STOP_UPDATING: Final = 0xFFFFFFFFFFFFFFFF  # -1 in SET_INFO: stop auto-updating
FILETIME_RESUME_UPDATING: Final = 0xFFFFFFFFFFFFFFFE  # -2: resume


def unix_ns_to_filetime(ns: int) -> int:
    """Nanoseconds since the Unix epoch (``st_mtime_ns``) to a FILETIME; 0 stays 0 only if
    the input is exactly 1601, so callers pass real times."""
    return max(0, ns // 100 + FILETIME_UNIX_EPOCH)


def filetime_to_unix_ns(ft: int) -> int:
    """A FILETIME to nanoseconds since the Unix epoch (negative before 1970)."""
    return (ft - FILETIME_UNIX_EPOCH) * 100


# --- length helpers --------------------------------------------------------------------


def _need(buf: Buffer, size: int, what: str) -> None:
    if len(buf) < size:
        raise ParseError(f"{what}: {len(buf)} bytes, need {size}", NTStatus.INFO_LENGTH_MISMATCH)


# --- 2.4 file information (query side) --------------------------------------------------

_BASIC: Final = struct.Struct("<QQQQII")
_STANDARD: Final = struct.Struct("<QQIBBH")
_U64: Final = struct.Struct("<Q")
_U32: Final = struct.Struct("<I")
_NETWORK_OPEN: Final = struct.Struct("<QQQQQQII")
_ATTR_TAG: Final = struct.Struct("<II")
_COMPRESSION: Final = struct.Struct("<QHBBB3s")
_FILE_ID_INFO: Final = struct.Struct("<Q16s")
_STREAM: Final = struct.Struct("<IIQQ")


class BasicInfo(NamedTuple):
    """[MS-FSCC] 2.4.7 FileBasicInformation (40 bytes). Times are FILETIMEs."""

    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    file_attributes: int


def pack_basic_info(i: BasicInfo) -> bytes:
    return _BASIC.pack(*i, 0)


def parse_basic_info(buf: Buffer) -> BasicInfo:
    """SET_INFO side: 40 bytes (a 36-byte buffer, as some clients send, is accepted)."""
    if len(buf) == 36:
        buf = bytes(buf) + bytes(4)
    _need(buf, _BASIC.size, "FileBasicInformation")
    c, a, w, ch, attrs, _ = _BASIC.unpack_from(buf)
    return BasicInfo(c, a, w, ch, attrs)


class StandardInfo(NamedTuple):
    """[MS-FSCC] 2.4.41 FileStandardInformation (24 bytes)."""

    allocation_size: int
    end_of_file: int
    number_of_links: int
    delete_pending: bool
    directory: bool


def pack_standard_info(i: StandardInfo) -> bytes:
    return _STANDARD.pack(
        i.allocation_size, i.end_of_file, i.number_of_links, i.delete_pending, i.directory, 0
    )


def pack_internal_info(index_number: int) -> bytes:
    """[MS-FSCC] 2.4.22 FileInternalInformation: IndexNumber (8)."""
    return _U64.pack(index_number)


def pack_ea_info(ea_size: int) -> bytes:
    """[MS-FSCC] 2.4.13 FileEaInformation."""
    return _U32.pack(ea_size)


def pack_access_info(access_flags: int) -> bytes:
    """[MS-FSCC] 2.4.1 FileAccessInformation."""
    return _U32.pack(access_flags)


def pack_position_info(offset: int) -> bytes:
    """[MS-FSCC] 2.4.35 FilePositionInformation."""
    return _U64.pack(offset)


def parse_position_info(buf: Buffer) -> int:
    _need(buf, 8, "FilePositionInformation")
    return int(_U64.unpack_from(buf)[0])


def pack_mode_info(mode: int) -> bytes:
    """[MS-FSCC] 2.4.26 FileModeInformation."""
    return _U32.pack(mode)


# FILE_WRITE_THROUGH | FILE_SEQUENTIAL_ONLY | FILE_NO_INTERMEDIATE_BUFFERING |
# FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT | FILE_DELETE_ON_CLOSE
MODE_VALID_MASK: Final = 0x0000103E


def parse_mode_info(buf: Buffer) -> int:
    """SET_INFO FileModeInformation; bits outside the defined ones are INVALID_PARAMETER."""
    _need(buf, 4, "FileModeInformation")
    (mode,) = _U32.unpack_from(buf)
    if mode & ~MODE_VALID_MASK:
        raise ParseError(f"FileModeInformation mode 0x{mode:x}")
    return int(mode)


def pack_alignment_info(requirement: int = 0) -> bytes:
    """[MS-FSCC] 2.4.3 FileAlignmentInformation."""
    return _U32.pack(requirement)


def pack_name_info(name: str) -> bytes:
    """[MS-FSCC] 2.4.27 FileNameInformation (also FileAlternateNameInformation 2.4.5 and
    FileNormalizedNameInformation 2.4.30): FileNameLength (4) and the UTF-16 name."""
    raw = encode_utf16(name)
    return _U32.pack(len(raw)) + raw


class AllInfo(NamedTuple):
    """[MS-FSCC] 2.4.2 FileAllInformation: the classes it concatenates."""

    basic: BasicInfo
    standard: StandardInfo
    index_number: int
    ea_size: int
    access_flags: int
    position: int
    mode: int
    alignment: int
    name: str


def pack_all_info(i: AllInfo) -> bytes:
    """Basic(40) Standard(24) Internal(8) Ea(4) Access(4) Position(8) Mode(4)
    Alignment(4) Name(4+n): 100 bytes plus the name."""
    return b"".join(
        (
            pack_basic_info(i.basic),
            pack_standard_info(i.standard),
            pack_internal_info(i.index_number),
            pack_ea_info(i.ea_size),
            pack_access_info(i.access_flags),
            pack_position_info(i.position),
            pack_mode_info(i.mode),
            pack_alignment_info(i.alignment),
            pack_name_info(i.name),
        )
    )


class NetworkOpenInfo(NamedTuple):
    """[MS-FSCC] 2.4.29 FileNetworkOpenInformation (56 bytes)."""

    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    allocation_size: int
    end_of_file: int
    file_attributes: int


def pack_network_open_info(i: NetworkOpenInfo) -> bytes:
    return _NETWORK_OPEN.pack(*i, 0)


def pack_attribute_tag_info(file_attributes: int, reparse_tag: int = 0) -> bytes:
    """[MS-FSCC] 2.4.6 FileAttributeTagInformation."""
    return _ATTR_TAG.pack(file_attributes, reparse_tag)


class StreamEntry(NamedTuple):
    """One [MS-FSCC] 2.4.43 FileStreamInformation entry, e.g. ``"::$DATA"``."""

    name: str
    size: int
    allocation_size: int


def pack_stream_info(streams: Sequence[StreamEntry]) -> bytes:
    """FileStreamInformation chain, entries 8-byte aligned with NextEntryOffset."""
    out = bytearray()
    for i, s in enumerate(streams):
        raw = encode_utf16(s.name)
        start = len(out)
        out += _STREAM.pack(0, len(raw), s.size, s.allocation_size)
        out += raw
        if i != len(streams) - 1:
            out += bytes(pad8(len(out)) - len(out))
            _U32.pack_into(out, start, len(out) - start)
    return bytes(out)


COMPRESSION_FORMAT_NONE: Final = 0
COMPRESSION_FORMAT_DEFAULT: Final = 1
COMPRESSION_FORMAT_LZNT1: Final = 2


def pack_compression_info(
    compressed_size: int,
    fmt: int = COMPRESSION_FORMAT_NONE,
    unit_shift: int = 0,
    chunk_shift: int = 0,
    cluster_shift: int = 0,
) -> bytes:
    """[MS-FSCC] 2.4.9 FileCompressionInformation (16 bytes)."""
    return _COMPRESSION.pack(compressed_size, fmt, unit_shift, chunk_shift, cluster_shift, b"")


def pack_file_id_info(volume_serial: int, file_id: bytes | int) -> bytes:
    """[MS-FSCC] 2.4.20 FileIdInformation: VolumeSerialNumber (8) and a 128-bit FileId."""
    fid = file_id.to_bytes(16, "little") if isinstance(file_id, int) else file_id
    return _FILE_ID_INFO.pack(volume_serial, fid)


# --- 2.4 file information (set side) ----------------------------------------------------

# ReplaceIfExists(1) Reserved(7) RootDirectory(8) FileNameLength(4), then FileName
_RENAME: Final = struct.Struct("<B7xQI")


class RenameInfo(NamedTuple):
    """[MS-FSCC] 2.4.37.2 FILE_RENAME_INFORMATION_TYPE_2 (the SMB2 form; also
    FileLinkInformation 2.4.25.2). For FileRenameInformationEx ``flags`` holds the Flags
    (FILE_RENAME_REPLACE_IF_EXISTS 0x1, POSIX_SEMANTICS 0x2, ...), and
    ``replace_if_exists`` is ``flags & 1``."""

    replace_if_exists: bool
    root_directory: int
    name: str
    flags: int = 0


FILE_RENAME_REPLACE_IF_EXISTS: Final = 0x00000001
FILE_RENAME_POSIX_SEMANTICS: Final = 0x00000002


def parse_rename_info(buf: Buffer, *, ex: bool = False) -> RenameInfo:
    """Parse FileRenameInformation (or ...Ex when ``ex``) / FileLinkInformation.

    Short buffer -> INFO_LENGTH_MISMATCH; FileNameLength beyond the buffer, zero, or odd ->
    INVALID_PARAMETER.
    """
    _need(buf, _RENAME.size, "FileRenameInformation")
    if ex:
        flags, root, name_len = struct.unpack_from("<I4xQI", buf)
        replace = bool(flags & FILE_RENAME_REPLACE_IF_EXISTS)
    else:
        rep, root, name_len = _RENAME.unpack_from(buf)
        replace, flags = bool(rep), 0
    if name_len == 0 or _RENAME.size + name_len > len(buf):
        raise ParseError(f"rename FileNameLength {name_len} outside the buffer")
    raw = memoryview(buf)[_RENAME.size : _RENAME.size + name_len]
    return RenameInfo(replace, root, decode_utf16(raw, "rename target"), flags)


def pack_rename_info(r: RenameInfo, *, ex: bool = False) -> bytes:
    raw = encode_utf16(r.name)
    if ex:
        return struct.pack("<I4xQI", r.flags, r.root_directory, len(raw)) + raw
    return _RENAME.pack(r.replace_if_exists, r.root_directory, len(raw)) + raw


FILE_DISPOSITION_DELETE: Final = 0x00000001
FILE_DISPOSITION_POSIX_SEMANTICS: Final = 0x00000002
FILE_DISPOSITION_FORCE_IMAGE_SECTION_CHECK: Final = 0x00000004
FILE_DISPOSITION_ON_CLOSE: Final = 0x00000008
FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE: Final = 0x00000010


def parse_disposition_info(buf: Buffer) -> bool:
    """[MS-FSCC] 2.4.11 FileDispositionInformation: DeletePending (1 byte)."""
    _need(buf, 1, "FileDispositionInformation")
    return buf[0] != 0


def parse_disposition_info_ex(buf: Buffer) -> int:
    """[MS-FSCC] 2.4.12 FileDispositionInformationEx: Flags (4)."""
    _need(buf, 4, "FileDispositionInformationEx")
    return int(_U32.unpack_from(buf)[0])


def parse_end_of_file_info(buf: Buffer) -> int:
    """[MS-FSCC] 2.4.14 FileEndOfFileInformation: EndOfFile (8, signed on Windows: values
    with the top bit set are INVALID_PARAMETER)."""
    _need(buf, 8, "FileEndOfFileInformation")
    (v,) = _U64.unpack_from(buf)
    if v >> 63:
        raise ParseError("negative end of file")
    return int(v)


def parse_allocation_info(buf: Buffer) -> int:
    """[MS-FSCC] 2.4.4 FileAllocationInformation: AllocationSize (8)."""
    _need(buf, 8, "FileAllocationInformation")
    (v,) = _U64.unpack_from(buf)
    if v >> 63:
        raise ParseError("negative allocation size")
    return int(v)


def parse_valid_data_length_info(buf: Buffer) -> int:
    """[MS-FSCC] 2.4.49 FileValidDataLengthInformation."""
    _need(buf, 8, "FileValidDataLengthInformation")
    return int(_U64.unpack_from(buf)[0])


# --- 2.4 directory enumeration classes -------------------------------------------------


class DirEntry(NamedTuple):
    """Everything the directory classes can carry for one name. Times are FILETIMEs."""

    name: str
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    end_of_file: int = 0
    allocation_size: int = 0
    file_attributes: int = FileAttributes.NORMAL
    file_id: int = 0
    ea_size: int = 0
    short_name: str = ""
    reparse_tag: int = 0
    file_index: int = 0


# NextEntryOffset FileIndex CreationTime LastAccessTime LastWriteTime ChangeTime EndOfFile
# AllocationSize FileAttributes FileNameLength
_DIR_COMMON: Final = struct.Struct("<IIQQQQQQII")


def _dir_common(e: DirEntry, name_len: int) -> bytes:
    return _DIR_COMMON.pack(
        0,
        e.file_index,
        e.creation_time,
        e.last_access_time,
        e.last_write_time,
        e.change_time,
        e.end_of_file,
        e.allocation_size,
        e.file_attributes,
        name_len,
    )


def _short_name(e: DirEntry) -> bytes:
    raw = encode_utf16(e.short_name)[:24]
    return struct.pack("<B", len(raw)) + b"\0" + raw.ljust(24, b"\0")


def _enc_directory(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.10 FileDirectoryInformation (64 + name)."""
    return _dir_common(e, len(raw)) + raw


def _enc_full_directory(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.17 FileFullDirectoryInformation (68 + name)."""
    return _dir_common(e, len(raw)) + _U32.pack(e.ea_size) + raw


def _enc_id_full_directory(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.19 FileIdFullDirectoryInformation (80 + name)."""
    return _dir_common(e, len(raw)) + struct.pack("<IIQ", e.ea_size, 0, e.file_id) + raw


def _enc_both_directory(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.8 FileBothDirectoryInformation (94 + name)."""
    return _dir_common(e, len(raw)) + _U32.pack(e.ea_size) + _short_name(e) + raw


def _enc_id_both_directory(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.18 FileIdBothDirectoryInformation (104 + name)."""
    return (
        _dir_common(e, len(raw))
        + _U32.pack(e.ea_size)
        + _short_name(e)
        + struct.pack("<HQ", 0, e.file_id)
        + raw
    )


def _enc_id_extd_directory(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.21 FileIdExtdDirectoryInformation (88 + name): EaSize,
    ReparsePointTag, a 128-bit FileId."""
    return (
        _dir_common(e, len(raw))
        + struct.pack("<II", e.ea_size, e.reparse_tag)
        + e.file_id.to_bytes(16, "little")
        + raw
    )


def _enc_names(e: DirEntry, raw: bytes) -> bytes:
    """[MS-FSCC] 2.4.28 FileNamesInformation (12 + name)."""
    return struct.pack("<III", 0, e.file_index, len(raw)) + raw


DIRECTORY_ENCODERS: Final = {
    FileInfoClass.FileDirectoryInformation: _enc_directory,
    FileInfoClass.FileFullDirectoryInformation: _enc_full_directory,
    FileInfoClass.FileIdFullDirectoryInformation: _enc_id_full_directory,
    FileInfoClass.FileBothDirectoryInformation: _enc_both_directory,
    FileInfoClass.FileIdBothDirectoryInformation: _enc_id_both_directory,
    FileInfoClass.FileIdExtdDirectoryInformation: _enc_id_extd_directory,
    FileInfoClass.FileNamesInformation: _enc_names,
}
"""The directory classes QUERY_DIRECTORY serves; any other class is INVALID_INFO_CLASS."""

DIRECTORY_FIXED_SIZE: Final = {
    FileInfoClass.FileDirectoryInformation: 64,
    FileInfoClass.FileFullDirectoryInformation: 68,
    FileInfoClass.FileIdFullDirectoryInformation: 80,
    FileInfoClass.FileBothDirectoryInformation: 94,
    FileInfoClass.FileIdBothDirectoryInformation: 104,
    FileInfoClass.FileIdExtdDirectoryInformation: 88,
    FileInfoClass.FileNamesInformation: 12,
}


def encode_directory_entries(
    info_class: int, entries: Iterable[DirEntry], limit: int, *, single: bool = False
) -> tuple[bytes, int]:
    """Pack ``entries`` in ``info_class`` layout into at most ``limit`` bytes.

    Each entry starts 8-byte aligned and carries the NextEntryOffset of the next one (the
    last has 0, and no trailing padding is counted). Packing stops before the first entry
    that would not fit, or after one entry when ``single``. Returns ``(buffer, count)``;
    ``count == 0`` means not even the first entry fit (the caller answers
    BUFFER_OVERFLOW/INFO_LENGTH_MISMATCH as MS-SMB2 3.3.5.18 says).
    Raises ParseError(INVALID_INFO_CLASS) for a class that is not a directory class.
    """
    try:
        enc = DIRECTORY_ENCODERS[FileInfoClass(info_class)]
    except (ValueError, KeyError):
        raise ParseError(f"directory class {info_class}", NTStatus.INVALID_INFO_CLASS) from None
    out = bytearray()
    last_start = -1
    count = 0
    for e in entries:
        blob = enc(e, encode_utf16(e.name))
        start = pad8(len(out)) if count else 0
        if start + len(blob) > limit:
            break
        if count:
            out += bytes(start - len(out))
            _U32.pack_into(out, last_start, start - last_start)
        out += blob
        last_start = start
        count += 1
        if single:
            break
    return bytes(out), count


def parse_directory_names(info_class: int, buf: Buffer) -> list[str]:
    """Walk a directory-class buffer and return the names (tests and client peers)."""
    fixed = DIRECTORY_FIXED_SIZE[FileInfoClass(info_class)]
    name_len_at = 8 if info_class == FileInfoClass.FileNamesInformation else 60
    mv = memoryview(buf)
    names: list[str] = []
    pos = 0
    while len(mv):
        if pos + fixed > len(mv):
            raise ParseError("directory entry truncated")
        nxt = int(_U32.unpack_from(mv, pos)[0])
        (nlen,) = _U32.unpack_from(mv, pos + name_len_at)
        if pos + fixed + nlen > len(mv) or (nxt and nxt < fixed + nlen):
            raise ParseError("directory entry name outside the buffer")
        names.append(decode_utf16(mv[pos + fixed : pos + fixed + nlen], "directory entry"))
        if not nxt:
            break
        pos += nxt
    return names


# --- 2.5 file system information ------------------------------------------------------

_FS_VOLUME: Final = struct.Struct("<QIIBB")
_FS_SIZE: Final = struct.Struct("<QQII")
_FS_DEVICE: Final = struct.Struct("<II")
_FS_ATTRIBUTE: Final = struct.Struct("<III")
_FS_FULL_SIZE: Final = struct.Struct("<QQQII")
_FS_SECTOR_SIZE: Final = struct.Struct("<IIIIIII")


def pack_fs_volume_info(
    creation_time: int, serial_number: int, label: str, supports_objects: bool = False
) -> bytes:
    """[MS-FSCC] 2.5.9 FileFsVolumeInformation (18 + label)."""
    raw = encode_utf16(label)
    return _FS_VOLUME.pack(creation_time, serial_number, len(raw), supports_objects, 0) + raw


def pack_fs_size_info(
    total_units: int, available_units: int, sectors_per_unit: int, bytes_per_sector: int
) -> bytes:
    """[MS-FSCC] 2.5.8 FileFsSizeInformation (24 bytes)."""
    return _FS_SIZE.pack(total_units, available_units, sectors_per_unit, bytes_per_sector)


def pack_fs_device_info(
    device_type: int = FILE_DEVICE_DISK, characteristics: int = FILE_DEVICE_IS_MOUNTED
) -> bytes:
    """[MS-FSCC] 2.5.10 FileFsDeviceInformation (8 bytes)."""
    return _FS_DEVICE.pack(device_type, characteristics)


def pack_fs_attribute_info(attributes: int, max_component_length: int, fs_name: str) -> bytes:
    """[MS-FSCC] 2.5.1 FileFsAttributeInformation (12 + name)."""
    raw = encode_utf16(fs_name)
    return _FS_ATTRIBUTE.pack(attributes, max_component_length, len(raw)) + raw


def pack_fs_full_size_info(
    total_units: int,
    caller_available_units: int,
    actual_available_units: int,
    sectors_per_unit: int,
    bytes_per_sector: int,
) -> bytes:
    """[MS-FSCC] 2.5.4 FileFsFullSizeInformation (32 bytes)."""
    return _FS_FULL_SIZE.pack(
        total_units,
        caller_available_units,
        actual_available_units,
        sectors_per_unit,
        bytes_per_sector,
    )


def pack_fs_object_id_info(object_id: bytes, extended_info: bytes = b"") -> bytes:
    """[MS-FSCC] 2.5.6 FileFsObjectIdInformation: ObjectId (16), ExtendedInfo (48)."""
    if len(object_id) != 16 or len(extended_info) > 48:
        raise ValueError("object id is 16 bytes, extended info at most 48")
    return object_id + extended_info.ljust(48, b"\0")


def pack_fs_sector_size_info(
    logical: int = 512,
    physical_atomicity: int = 4096,
    physical_performance: int = 4096,
    effective_atomicity: int = 4096,
    flags: int = SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE,
    sector_alignment_offset: int = 0,
    partition_alignment_offset: int = 0,
) -> bytes:
    """[MS-FSCC] 2.5.7 FileFsSectorSizeInformation (28 bytes)."""
    return _FS_SECTOR_SIZE.pack(
        logical,
        physical_atomicity,
        physical_performance,
        effective_atomicity,
        flags,
        sector_alignment_offset,
        partition_alignment_offset,
    )


# --- [MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION ----------------------------------------

_EA: Final = struct.Struct("<IBBH")


class EaEntry(NamedTuple):
    name: bytes
    value: bytes
    flags: int = 0


def parse_full_ea_info(buf: Buffer) -> list[EaEntry]:
    """Walk a FILE_FULL_EA_INFORMATION chain (ExtA create context, SET_INFO FileFullEa).
    Names are ASCII, NUL-terminated; each entry stays inside its NextEntryOffset."""
    mv = memoryview(buf)
    out: list[EaEntry] = []
    pos = 0
    while True:
        remaining = len(mv) - pos
        if remaining < _EA.size:
            raise ParseError("EA entry truncated")
        nxt, flags, name_len, value_len = _EA.unpack_from(mv, pos)
        extent = nxt if nxt else remaining
        need = _EA.size + name_len + 1 + value_len
        if (nxt and (nxt & 3 or nxt >= remaining)) or need > extent:
            raise ParseError("EA entry outside the buffer")
        name_end = pos + _EA.size + name_len
        if mv[name_end] != 0:
            raise ParseError("EA name not NUL-terminated")
        name = bytes(mv[pos + _EA.size : name_end])
        if not name:
            raise ParseError("empty EA name", NTStatus.INVALID_EA_NAME)
        out.append(EaEntry(name, bytes(mv[name_end + 1 : name_end + 1 + value_len]), flags))
        if not nxt:
            return out
        pos += nxt


def pack_full_ea_info(entries: Sequence[EaEntry]) -> bytes:
    out = bytearray()
    for i, e in enumerate(entries):
        start = len(out)
        out += _EA.pack(0, e.flags, len(e.name), len(e.value)) + e.name + b"\0" + e.value
        if i != len(entries) - 1:
            out += bytes(((len(out) + 3) & ~3) - len(out))
            _U32.pack_into(out, start, len(out) - start)
    return bytes(out)


# --- [MS-DTYP] 2.4.2 SID, 2.4.5 ACL, 2.4.6 SECURITY_DESCRIPTOR ---------------------------

OWNER_SECURITY_INFORMATION: Final = 0x00000001
GROUP_SECURITY_INFORMATION: Final = 0x00000002
DACL_SECURITY_INFORMATION: Final = 0x00000004
SACL_SECURITY_INFORMATION: Final = 0x00000008
LABEL_SECURITY_INFORMATION: Final = 0x00000010

SE_DACL_PRESENT: Final = 0x0004
SE_SELF_RELATIVE: Final = 0x8000
ACCESS_ALLOWED_ACE_TYPE: Final = 0x00
SID_EVERYONE: Final = "S-1-1-0"


def pack_sid(sid: str) -> bytes:
    """``"S-1-5-21-1-2-3-1000"`` -> [MS-DTYP] 2.4.2.2 binary SID."""
    parts = sid.split("-")
    if len(parts) < 3 or parts[0].upper() != "S" or len(parts) - 3 > 15:
        raise ValueError(f"bad SID {sid!r}")
    revision, authority = int(parts[1]), int(parts[2])
    subs = [int(p) for p in parts[3:]]
    return (
        struct.pack("<BB", revision, len(subs))
        + authority.to_bytes(6, "big")
        + b"".join(struct.pack("<I", s) for s in subs)
    )


def parse_sid(buf: Buffer, offset: int = 0) -> tuple[str, int]:
    """Binary SID at ``offset`` -> (string form, length in bytes)."""
    mv = memoryview(buf)
    if offset < 0 or offset + 8 > len(mv):
        raise ParseError("SID truncated")
    revision, count = mv[offset], mv[offset + 1]
    size = 8 + 4 * count
    if count > 15 or offset + size > len(mv):
        raise ParseError("SID truncated")
    authority = int.from_bytes(mv[offset + 2 : offset + 8], "big")
    subs = struct.unpack_from(f"<{count}I", mv, offset + 8)
    return "-".join(["S", str(revision), str(authority), *map(str, subs)]), size


def pack_acl(aces: Sequence[tuple[int, int, int, str]]) -> bytes:
    """[MS-DTYP] 2.4.5 ACL (revision 2) from ``(type, flags, mask, sid)`` ACEs."""
    body = bytearray()
    for ace_type, flags, mask, sid in aces:
        raw_sid = pack_sid(sid)
        body += struct.pack("<BBHI", ace_type, flags, 8 + len(raw_sid), mask) + raw_sid
    return struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + bytes(body)


def build_security_descriptor(
    owner: str,
    group: str,
    *,
    grant_to: str = SID_EVERYONE,
    access_mask: int = 0x001F01FF,
    security_information: int = (
        OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION
    ),
) -> bytes:
    """A self-relative SECURITY_DESCRIPTOR with the parts ``security_information`` asks
    for: owner and group SIDs and a DACL with one ACCESS_ALLOWED ACE granting
    ``access_mask`` (default FILE_ALL_ACCESS) to ``grant_to`` (Everyone by default)."""
    parts: list[bytes] = []
    pos = 20
    off_owner = off_group = off_dacl = 0
    control = SE_SELF_RELATIVE
    if security_information & OWNER_SECURITY_INFORMATION:
        sid = pack_sid(owner)
        off_owner, pos = pos, pos + len(sid)
        parts.append(sid)
    if security_information & GROUP_SECURITY_INFORMATION:
        sid = pack_sid(group)
        off_group, pos = pos, pos + len(sid)
        parts.append(sid)
    if security_information & DACL_SECURITY_INFORMATION:
        acl = pack_acl([(ACCESS_ALLOWED_ACE_TYPE, 0, access_mask, grant_to)])
        off_dacl, pos = pos, pos + len(acl)
        parts.append(acl)
        control |= SE_DACL_PRESENT
    header = struct.pack("<BBHIIII", 1, 0, control, off_owner, off_group, 0, off_dacl)
    return header + b"".join(parts)


class SecurityDescriptorInfo(NamedTuple):
    control: int
    owner: str | None
    group: str | None
    dacl_ace_count: int | None


def parse_security_descriptor(buf: Buffer) -> SecurityDescriptorInfo:
    """Check a self-relative SECURITY_DESCRIPTOR (SET_INFO security, SecD context): every
    offset inside the buffer. Returns the owner/group SIDs and the DACL's ACE count."""
    mv = memoryview(buf)
    if len(mv) < 20:
        raise ParseError("security descriptor truncated")
    rev, _, control, o_owner, o_group, o_sacl, o_dacl = struct.unpack_from("<BBHIIII", mv)
    if rev != 1:
        raise ParseError("security descriptor revision")
    owner = parse_sid(mv, o_owner)[0] if o_owner else None
    group = parse_sid(mv, o_group)[0] if o_group else None
    aces: int | None = None
    for off, present in ((o_sacl, 0x0010), (o_dacl, SE_DACL_PRESENT)):
        if not off or not control & present:
            continue
        if off + 8 > len(mv):
            raise ParseError("ACL truncated")
        _, _, acl_size, count, _ = struct.unpack_from("<BBHHH", mv, off)
        if acl_size < 8 or off + acl_size > len(mv):
            raise ParseError("ACL outside the descriptor")
        p, end = off + 8, off + acl_size
        for _ in range(count):
            if p + 4 > end:
                raise ParseError("ACE truncated")
            (ace_size,) = struct.unpack_from("<H", mv, p + 2)
            if ace_size < 4 or p + ace_size > end:
                raise ParseError("ACE outside the ACL")
            p += ace_size
        if present == SE_DACL_PRESENT:
            aces = count
    return SecurityDescriptorInfo(control, owner, group, aces)
