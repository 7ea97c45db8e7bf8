import stat
from pathlib import Path

import pytest

from smbd.auth.nthash import md4, nt_hash
from vmstor.users import UserDB, UserError


def test_md4_rfc1320_vectors() -> None:
    # RFC 1320, appendix A.5
    assert md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert md4(b"a").hex() == "bde52cb31de33e46245e05fbdbd6fb24"
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert md4(b"message digest").hex() == "d9130a8164549fe818874806e1c7014b"
    assert md4(b"1234567890" * 8).hex() == "e33b4ddc9c38f2199c3e7b164fcc0536"


def test_nt_hash_ms_nlmp_4_2_1() -> None:
    # [MS-NLMP] 4.2.2.1.2: NTOWFv1("Password")
    assert nt_hash("Password").hex() == "a4f49c406510bdcab6824ee7c30fd852"


def test_userdb_stores_only_hashes_mode_0600(tmp_path: Path) -> None:
    db = UserDB(tmp_path)
    db.add("Alice", "s3cret-Password")
    text = (tmp_path / "users.json").read_text()
    assert "s3cret-Password" not in text
    assert nt_hash("s3cret-Password").hex() in text
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    found = db.lookup("ALICE")
    assert found == ("Alice", nt_hash("s3cret-Password"))
    assert db.check_password("alice", "s3cret-Password")
    assert not db.check_password("alice", "wrong")
    with pytest.raises(UserError):
        db.add("alice", "again")
    db.delete("alice")
    assert db.lookup("alice") is None
    with pytest.raises(UserError):
        db.delete("alice")
