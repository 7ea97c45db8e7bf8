"""smbd.crypto against Microsoft's published SMB 3 vectors, smbprotocol, and properties.

Vector sources (Microsoft Open Specifications blog):
  [ENC30]  "Encryption in SMB 3.0: A protocol perspective" (2012-10-05)
  [ENC311] "SMB 3.1.1 Encryption in Windows 10" (2015-09-09)
  [PAI311] "SMB 3.1.1 Pre-authentication integrity in Windows 10" (2015-08-11)
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import struct
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode
from hypothesis import given, settings
from hypothesis import strategies as st
from smbprotocol.connection import Connection as SmbprotocolConnection
from smbprotocol.connection import SMB2TransformHeader

from smbd import crypto
from smbd.crypto import (
    AES_128_CCM,
    AES_128_GCM,
    AES_256_CCM,
    AES_256_GCM,
    AES_CMAC,
    AES_GMAC,
    HMAC_SHA256,
    CryptoError,
    Encryptor,
)

ALL_CIPHERS = (AES_128_CCM, AES_128_GCM, AES_256_CCM, AES_256_GCM)
ALL_SIGNING = (HMAC_SHA256, AES_CMAC, AES_GMAC)


def h(*fields: str) -> bytes:
    """Join hex fields (one protocol field per argument, spaces ignored)."""
    return bytes.fromhex("".join(fields).replace(" ", ""))


def fixed_rng(value: bytes):  # type: ignore[no-untyped-def]
    def rng(n: int) -> bytes:
        assert n == len(value)
        return value

    return rng


def counting_rng(n: int) -> bytes:
    return bytes(range(1, n + 1))


# --------------------------------------------------------------------------------------
# [MS-SMB2] 3.1.4.2 key derivation; [ENC30]

ENC30_SESSION_KEY = h("B4546771B515F766A86735532DD6C4F0")
ENC30_SESSION_ID = 0x0008E40014000011
ENC30_CLIENT_ENCRYPTION_KEY = h("261B72350558F2E9DCF613070383EDBF")  # "ServerIn "
ENC30_SERVER_ENCRYPTION_KEY = h("8FE2B57EC34D2DB5B1A9727F526BBDB5")  # "ServerOut"

# [ENC30] the client's WRITE request, plaintext
ENC30_WRITE_REQUEST = h(
    "FE534D42",  # ProtocolId
    "4000",  # StructureSize 64
    "0100",  # CreditCharge 1
    "00000000",  # ChannelSequence/Reserved
    "0900",  # Command WRITE
    "4000",  # CreditRequest 64
    "08000000",  # Flags SIGNED
    "00000000",  # NextCommand
    "0400000000000000",  # MessageId 4
    "FFFE0000",  # Reserved
    "01000000",  # TreeId 1
    "1100001400E40800",  # SessionId
    "00000000000000000000000000000000",  # Signature
    "3100",  # WRITE StructureSize 49
    "7000",  # DataOffset 0x70
    "17000000",  # Length 23
    "0000000000000000",  # Offset
    "1501000039000002 0100000039020000",  # FileId
    "00000000",  # Channel
    "00000000",  # RemainingBytes
    "7000",  # WriteChannelInfoOffset
    "0000",  # WriteChannelInfoLength
    "00000000",  # Flags
    "536D623320656E6372797074696F6E2074657374696E67",  # "Smb3 encryption testing"
)
# [ENC30] the same request, transformed
ENC30_WRITE_REQUEST_TRANSFORMED = h(
    "FD534D42",  # ProtocolId
    "81A286535415445DAE393921E44FA42E",  # Signature
    "66E69A111892584FB5ED524A744DA3EE",  # Nonce (AES-128-CCM uses the first 11 bytes)
    "87000000",  # OriginalMessageSize 135
    "0000",  # Reserved
    "0100",  # Flags/EncryptionAlgorithm
    "1100001400E40800",  # SessionId
    "25C8FEE16605A437832D1CD52DA9F4645333482A175FE5384563F45FCDAFAEF3"
    "8BC62BA4D5C62897996625A44C29BE5658DE2E6117585779E7B59FFD971278D0"
    "8580D7FA899E410E910EABF5AA1DB43050B33B49182637759AC15D84BFCDF5B6"
    "B238993C0F4CF4D6012023F6C627297075D84B7803912D0A9639634453595EF3"
    "E33FFE4E7AC2AB",  # ciphertext
)
# [ENC30] the server's WRITE response, transformed and plaintext
ENC30_WRITE_RESPONSE_TRANSFORMED = h(
    "FD534D42",  # ProtocolId
    "A6015530A18F6D9AFFE22AFAE8E66484",  # Signature
    "86000000000000001100001400E40800",  # Nonce
    "50000000",  # OriginalMessageSize 80
    "0000",  # Reserved
    "0100",  # Flags/EncryptionAlgorithm
    "1100001400E40800",  # SessionId
    "DBF46435C5F14169293CE079E344479BF670227E49873F458672C3098DAC467D"
    "D5809F369D674091665157871483E01F7BECD02064EAC3E235F913668BBC2F09"
    "7980D4B378F1993EFF6E60D177309E5B",  # ciphertext
)
ENC30_WRITE_RESPONSE = h(
    "FE534D42 4000 0100 00000000",  # ProtocolId, StructureSize, CreditCharge, Status
    "0900",  # Command WRITE
    "2100",  # CreditResponse 33
    "09000000",  # Flags SERVER_TO_REDIR | SIGNED
    "00000000",  # NextCommand
    "0400000000000000",  # MessageId 4
    "FFFE0000 01000000",  # Reserved, TreeId
    "1100001400E40800",  # SessionId
    "00000000000000000000000000000000",  # Signature
    "1100",  # WRITE response StructureSize 17
    "0000",  # Reserved
    "17000000",  # Count 23
    "00000000",  # Remaining
    "0000 0000",  # WriteChannelInfoOffset/Length
)


def test_3_1_4_2_kdf_smb30_cipher_keys_enc30() -> None:
    keys = crypto.derive_keys(ENC30_SESSION_KEY, 0x0300, None, AES_128_CCM)
    assert keys.decryption == ENC30_CLIENT_ENCRYPTION_KEY
    assert keys.encryption == ENC30_SERVER_ENCRYPTION_KEY
    assert crypto.derive_keys(ENC30_SESSION_KEY, 0x0302, None, 0) == keys


def test_3_1_4_3_decrypt_smb30_client_request_enc30() -> None:
    session_id, plaintext = crypto.decrypt(
        AES_128_CCM, ENC30_CLIENT_ENCRYPTION_KEY, memoryview(ENC30_WRITE_REQUEST_TRANSFORMED)
    )
    assert session_id == ENC30_SESSION_ID
    assert plaintext == ENC30_WRITE_REQUEST


def test_3_1_4_3_decrypt_smb30_server_response_enc30() -> None:
    session_id, plaintext = crypto.decrypt(
        AES_128_CCM, ENC30_SERVER_ENCRYPTION_KEY, memoryview(ENC30_WRITE_RESPONSE_TRANSFORMED)
    )
    assert session_id == ENC30_SESSION_ID
    assert plaintext == ENC30_WRITE_RESPONSE


def test_3_1_4_3_encrypt_smb30_ciphertext_enc30() -> None:
    # Windows left bytes in the unused 5 nonce bytes; we send zeros there, which changes the
    # AAD and so the tag, but not the CCM ciphertext (it depends on key, nonce, plaintext).
    nonce = ENC30_WRITE_RESPONSE_TRANSFORMED[20:31]
    enc = Encryptor(AES_128_CCM, ENC30_SERVER_ENCRYPTION_KEY, fixed_rng(nonce))
    header, ciphertext = enc.encrypt(ENC30_SESSION_ID, [ENC30_WRITE_RESPONSE])
    assert ciphertext == ENC30_WRITE_RESPONSE_TRANSFORMED[52:]
    assert header[20:31] == nonce
    assert header[31:36] == bytes(5)
    assert crypto.decrypt(
        AES_128_CCM, ENC30_SERVER_ENCRYPTION_KEY, bytes(header) + bytes(ciphertext)
    ) == (
        ENC30_SESSION_ID,
        ENC30_WRITE_RESPONSE,
    )


# --------------------------------------------------------------------------------------
# [ENC311]

ENC311_SESSION_KEY = h("419FDDF34C1E001909D362AE7FB6AF79")
ENC311_PREAUTH_HASH = h(
    "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDB"
    "A7DB256BA2EA30E977F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770"
)
ENC311_SESSION_ID = 0x0000100000000025
ENC311_CLIENT_ENCRYPTION_KEY = h("A2F5E80E5D59103034F32E52F698E5EC")  # SMBC2SCipherKey
ENC311_SERVER_ENCRYPTION_KEY = h("748C50868C90F302962A5C35F5F9A8BF")  # SMBS2CCipherKey

ENC311_WRITE_REQUEST = h(
    "FE534D42 4000 0100 00000000",  # ProtocolId, StructureSize, CreditCharge, ChannelSequence
    "0900",  # Command WRITE
    "0100",  # CreditRequest 1
    "08000000",  # Flags SIGNED
    "00000000",  # NextCommand
    "0500000000000000",  # MessageId 5
    "FFFE0000 01000000",  # Reserved, TreeId 1
    "2500000000100000",  # SessionId
    "00000000000000000000000000000000",  # Signature
    "3100 7000 17000000",  # StructureSize 49, DataOffset 0x70, Length 23
    "0000000000000000",  # Offset
    "0600000004000000 0100000004000000",  # FileId
    "00000000 00000000",  # Channel, RemainingBytes
    "7000 0000 00000000",  # WriteChannelInfoOffset/Length, Flags
    "536D623320656E6372797074696F6E2074657374696E67",  # "Smb3 encryption testing"
)
ENC311_WRITE_REQUEST_TRANSFORMED = h(
    "FD534D42",  # ProtocolId
    "BD73D97D2BC9001BCAFAC0FDFF5FEEBC",  # Signature
    "C7D6822D269CAF48904C664C00000000",  # Nonce (AES-128-GCM: 12 bytes + 4 zero)
    "87000000",  # OriginalMessageSize 135
    "0000",  # Reserved
    "0100",  # Flags: Encrypted
    "2500000000100000",  # SessionId
    "6ECDD2A7AFC7B47763057A041B8FD4DAFFE990B70C9E09D36C084E02D14EF247"
    "F8BDE38ACF6256F8B1D3B56F77FBDEB312FEA5E92CBCC1ED8FB2EBBFAA75E49A"
    "4A394BB44576545567C24D4C014D47C9FBDFDAFD2C4F9B72F8D256452620A299"
    "F48E29E53D6B61D1C13A19E91AF013F00D17E3ABC2FC3D36C8C1B6B939732538"
    "52DBD442E46EE8",  # ciphertext
)
ENC311_WRITE_RESPONSE = h(
    "FE534D42 4000 0100 00000000",  # ProtocolId, StructureSize, CreditCharge, Status
    "0900",  # Command WRITE
    "0100",  # CreditResponse 1
    "01000000",  # Flags SERVER_TO_REDIR
    "00000000",  # NextCommand
    "0500000000000000",  # MessageId 5
    "FFFE0000 01000000",  # Reserved, TreeId
    "2500000000100000",  # SessionId
    "00000000000000000000000000000000",  # Signature
    "1100 0000 17000000 00000000 0000 0000",  # WRITE response, Count 23
)
ENC311_WRITE_RESPONSE_TRANSFORMED = h(
    "FD534D42",  # ProtocolId
    "ACBE1CB7ED343ADF1725EF144D90D4B0",  # Signature
    "E06831DD2E8EB7B40000000000000000",  # Nonce
    "50000000",  # OriginalMessageSize 80
    "0000",  # Reserved
    "0100",  # Flags: Encrypted
    "2500000000100000",  # SessionId
    "26BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8F2D793A8"
    "15C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA"
    "6179159B82E03C9E18A050FF0EA1C967",  # ciphertext
)


def test_3_1_4_2_kdf_smb311_cipher_keys_enc311() -> None:
    keys = crypto.derive_keys(ENC311_SESSION_KEY, 0x0311, ENC311_PREAUTH_HASH, AES_128_GCM)
    assert keys.decryption == ENC311_CLIENT_ENCRYPTION_KEY
    assert keys.encryption == ENC311_SERVER_ENCRYPTION_KEY


def test_3_1_4_3_decrypt_smb311_gcm_client_request_enc311() -> None:
    assert crypto.decrypt(
        AES_128_GCM, ENC311_CLIENT_ENCRYPTION_KEY, memoryview(ENC311_WRITE_REQUEST_TRANSFORMED)
    ) == (ENC311_SESSION_ID, ENC311_WRITE_REQUEST)


def test_3_1_4_3_encrypt_smb311_gcm_server_response_enc311() -> None:
    nonce = ENC311_WRITE_RESPONSE_TRANSFORMED[20:32]
    enc = Encryptor(AES_128_GCM, ENC311_SERVER_ENCRYPTION_KEY, fixed_rng(nonce))
    parts = enc.encrypt(ENC311_SESSION_ID, [ENC311_WRITE_RESPONSE[:64], ENC311_WRITE_RESPONSE[64:]])
    assert len(parts) == 2
    assert b"".join(parts) == ENC311_WRITE_RESPONSE_TRANSFORMED


def test_3_1_4_3_encrypt_smb311_gcm_client_request_enc311() -> None:
    # The same machinery run with the client's key reproduces the client's message.
    nonce = ENC311_WRITE_REQUEST_TRANSFORMED[20:32]
    enc = Encryptor(AES_128_GCM, ENC311_CLIENT_ENCRYPTION_KEY, fixed_rng(nonce))
    header, ciphertext = enc.encrypt(ENC311_SESSION_ID, [ENC311_WRITE_REQUEST])
    assert bytes(header) + bytes(ciphertext) == ENC311_WRITE_REQUEST_TRANSFORMED


# --------------------------------------------------------------------------------------
# [PAI311]: pre-authentication integrity hash chain and the signing key derived from it

PAI_NEGOTIATE_REQUEST = h(
    "FE534D4240000100000000000000800000000000000000000100000000000000FFFE000000000000"
    "00000000000000000000000000000000000000000000000024000500000000003F000000ECD86F32"
    "6276024F9F7752B89BB33F3A70000000020000000202100200030203110300000100260000000000"
    "010020000100FA49E6578F1F3A9F4CD3E9CC14A67AA884B3D05844E0E5A118225C15887F32FF0000"
    "0200060000000000020002000100"
)
PAI_HASH_1 = h(
    "DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C736"
    "2B8C47122594CDE0CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426"
)
PAI_NEGOTIATE_RESPONSE = h(
    "FE534D4240000100000000000000010001000000000000000100000000000000FFFE000000000000"
    "000000000000000000000000000000000000000000000000410001001103020039CBCAF329714942"
    "BDCE5D60F09AB3FB2F000000000080000000800000008000D8DAE5ADCBAED00109094AB095AED001"
    "80004001C00100006082013C06062B0601050502A08201303082012CA01A3018060A2B0601040182"
    "3702021E060A2B06010401823702020AA282010C048201084E45474F455854530100000000000000"
    "60000000700000007C7CC0FD06D6362D02DDE1CF343BFE292900F49750B4AA97934D9C4296B26E51"
    "FD370471B235E15A50DAE15BD5489C87000000000000000060000000010000000000000000000000"
    "5C33530DEAF90D4DB2EC4AE3786EC3084E45474F4558545303000000010000004000000098000000"
    "7C7CC0FD06D6362D02DDE1CF343BFE295C33530DEAF90D4DB2EC4AE3786EC3084000000058000000"
    "3056A05430523027802530233121301F06035504031318546F6B656E205369676E696E6720507562"
    "6C6963204B65793027802530233121301F06035504031318546F6B656E205369676E696E67205075"
    "626C6963204B6579010026000000000001002000010060A3C3B95C3C7CCD51EC536648D9B3AC74C4"
    "83CA5B65385A251117BEB30712E50000020004000000000001000200"
)
PAI_HASH_2 = h(
    "324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE"
    "3C94A79F36011E997E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513"
)
PAI_SESSION_SETUP_REQUEST_1 = h(
    "FE534D4240000100000000000100800000000000000000000200000000000000FFFE000000000000"
    "00000000000000000000000000000000000000000000000019000001010000000000000058004A00"
    "0000000000000000604806062B0601050502A03E303CA00E300C060A2B06010401823702020AA22A"
    "04284E544C4D5353500001000000978208E200000000000000000000000000000000060380250000"
    "000F"
)
PAI_HASH_3 = h(
    "AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5"
    "D432F8ED42C55E33197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9"
)
PAI_SESSION_SETUP_RESPONSE_1 = h(
    "FE534D4240000100160000C00100010001000000000000000200000000000000FFFE000000000000"
    "190000000010000000000000000000000000000000000000090000004800B300A181B03081ADA003"
    "0A0101A10C060A2B06010401823702020AA281970481944E544C4D53535000020000000C000C0038"
    "00000015828AE20D1D8BA31179D008000000000000000050005000440000000A0092270000000F53"
    "005500540033003100310002000C0053005500540033003100310001000C00530055005400330031"
    "00310004000C0053005500540033003100310003000C0053005500540033003100310007000800A1"
    "A1F5ADCBAED00100000000"
)
PAI_HASH_4 = h(
    "2729E3440DFDDD839E37193F6E8F20C20CEFB3469E453A70CD980EEC06B88357"
    "40A73760085633364C8989895ECE81BF102DEEB14D4B7D48AFA76901A7A38387"
)
PAI_SESSION_SETUP_REQUEST_2 = h(
    "FE534D4240000100000000000100800000000000000000000300000000000000FFFE000000000000"
    "1900000000100000000000000000000000000000000000001900000101000000000000005800CF01"
    "0000000000000000A18201CB308201C7A0030A0101A28201AA048201A64E544C4D53535000030000"
    "001800180090000000EE00EE00A80000000C000C00580000001A001A0064000000120012007E0000"
    "001000100096010000158288E2060380250000000FECAC77A5F385A8BF9C38C706EEEDDCD3530055"
    "005400330031003100610064006D0069006E006900730074007200610074006F0072004400520049"
    "0056004500520033003100310000000000000000000000000000000000000000000000000063078E"
    "B639FE03E20A231C3AE3BF23080101000000000000A1A1F5ADCBAED001BC4AD05F223CC90F000000"
    "0002000C0053005500540033003100310001000C0053005500540033003100310004000C00530055"
    "00540033003100310003000C0053005500540033003100310007000800A1A1F5ADCBAED001060004"
    "00020000000800300030000000000000000000000000300000B61FEFCAA857EA57BF1EDCEBF8974B"
    "8E0EBA5A6DFD9D07A31D11B548F8C9D0CC0A00100000000000000000000000000000000000090016"
    "0063006900660073002F005300550054003300310031000000000000000000000000003B9BDFF38F"
    "5EE8F9663F11A0F4C03A78A31204100100000063775A9A5FD97F0600000000"
)
PAI_HASH_5 = h(
    "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB79"
    "28622DDDAD522D9751640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01"
)
PAI_SESSION_KEY = h("270E1BA896585EEB7AF3472D3B4C75A7")
PAI_SIGNING_KEY = h("73FE7A9A77BEF0BDE49C650D8CCB5F76")


def test_3_3_5_4_preauth_integrity_chain_pai311() -> None:
    value = bytes(64)
    steps = [
        (PAI_NEGOTIATE_REQUEST, PAI_HASH_1),
        (PAI_NEGOTIATE_RESPONSE, PAI_HASH_2),
        (PAI_SESSION_SETUP_REQUEST_1, PAI_HASH_3),
        (PAI_SESSION_SETUP_RESPONSE_1, PAI_HASH_4),
        (PAI_SESSION_SETUP_REQUEST_2, PAI_HASH_5),
    ]
    for message, expected in steps:
        value = crypto.preauth_update(value, memoryview(message))
        assert value == expected
    keys = crypto.derive_keys(PAI_SESSION_KEY, 0x0311, value, AES_128_GCM)
    assert keys.signing == PAI_SIGNING_KEY


# --------------------------------------------------------------------------------------
# KDF cross-checked against cryptography's own SP800-108 implementation (KBKDFHMAC), and
# the whole key schedule against smbprotocol's client (an independent implementation).


def _kbkdf(ki: bytes, label: bytes, context: bytes, length: int) -> bytes:
    return KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=context,
        fixed=None,
    ).derive(ki)


@settings(max_examples=50)
@given(
    ki=st.binary(min_size=16, max_size=32),
    label=st.binary(max_size=20),
    context=st.binary(max_size=70),
    length=st.sampled_from([16, 32, 48, 64]),
)
def test_3_1_4_2_kdf_matches_sp800_108(
    ki: bytes, label: bytes, context: bytes, length: int
) -> None:
    assert crypto.kdf(ki, label, context, length * 8) == _kbkdf(ki, label, context, length)


@pytest.mark.parametrize("cipher", [0, *ALL_CIPHERS])
@pytest.mark.parametrize("session_key_len", [16, 32])
def test_3_3_5_5_3_key_schedule_matches_smbprotocol(cipher: int, session_key_len: int) -> None:
    # smbprotocol's Session (session.py) names keys from the client's side: its
    # encryption key is our decryption key.
    full = bytes(range(7, 7 + session_key_len))
    key16 = full[:16]
    ph = hashlib.sha512(b"vmstor").digest()
    keys = crypto.derive_keys(full, 0x0311, ph, cipher)
    wide = cipher in (AES_256_CCM, AES_256_GCM)
    cipher_ki, n = (full, 32) if wide else (key16, 16)
    assert keys.signing == _kbkdf(key16, b"SMBSigningKey\x00", ph, 16)
    assert keys.application == _kbkdf(key16, b"SMBAppKey\x00", ph, 16)
    assert keys.decryption == _kbkdf(cipher_ki, b"SMBC2SCipherKey\x00", ph, n)
    assert keys.encryption == _kbkdf(cipher_ki, b"SMBS2CCipherKey\x00", ph, n)
    k30 = crypto.derive_keys(full, 0x0300, None, cipher)
    assert k30.signing == _kbkdf(key16, b"SMB2AESCMAC\x00", b"SmbSign\x00", 16)
    assert k30.application == _kbkdf(key16, b"SMB2APP\x00", b"SmbRpc\x00", 16)
    assert k30.decryption == _kbkdf(key16, b"SMB2AESCCM\x00", b"ServerIn \x00", 16)
    assert k30.encryption == _kbkdf(key16, b"SMB2AESCCM\x00", b"ServerOut\x00", 16)


def test_3_3_5_5_3_smb2_keys_are_the_session_key() -> None:
    for dialect in (0x0202, 0x0210):
        keys = crypto.derive_keys(b"\x01" * 16, dialect, None, 0)
        assert keys.signing == keys.application == b"\x01" * 16
        assert keys.encryption == keys.decryption == b""
    # shorter GSS keys are zero-padded to 16 bytes
    assert crypto.derive_keys(b"\x02" * 8, 0x0210, None, 0).signing == b"\x02" * 8 + bytes(8)


def test_derive_keys_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        crypto.derive_keys(bytes(16), 0x0311, None, AES_128_GCM)
    with pytest.raises(ValueError):
        crypto.derive_keys(bytes(16), 0x0222, None, 0)
    assert "redacted" in repr(crypto.derive_keys(bytes(16), 0x0300, None, 1))


# --------------------------------------------------------------------------------------
# [MS-SMB2] 3.1.4.1 signing, cross-checked against smbprotocol's Connection


def _message(command: int, flags: int, message_id: int, body: bytes) -> bytes:
    header = struct.pack(
        "<4sHHIHHIIQIIQ16s",
        b"\xfeSMB",
        64,
        1,
        0,
        command,
        1,
        flags,
        0,
        message_id,
        0xFEFF,
        1,
        0x1122334455667788,
        b"\xaa" * 16,  # junk in the Signature field: it must be read as zero
    )
    return header + body


def _smbprotocol_signature(
    algorithm: int, key: bytes, message: bytes, response: bool, command: int
) -> bytes:
    # smbprotocol picks the algorithm from the dialect and negotiated id.
    conn = SimpleNamespace(dialect=0x0311, signing_algorithm_id=algorithm)
    message_id = struct.unpack_from("<Q", message, 24)[0]
    sig: bytes = SmbprotocolConnection._generate_signature(
        conn, message, key, message_id, response, command
    )
    return sig


@pytest.mark.parametrize("algorithm", ALL_SIGNING)
@pytest.mark.parametrize(
    ("command", "flags"),
    [(0x0008, 0), (0x0008, 1), (0x000C, 0), (0x0003, 0x0000000D)],
)
@pytest.mark.parametrize("body_size", [99, 40000])  # one-shot and incremental paths
def test_3_1_4_1_sign_matches_smbprotocol(
    algorithm: int, command: int, flags: int, body_size: int
) -> None:
    key = bytes(range(16))
    body = (b"body bytes " * (body_size // 11 + 1))[:body_size]
    msg = _message(command, flags, 0x0102030405, body)
    expected = _smbprotocol_signature(algorithm, key, msg, bool(flags & 1), command)
    assert crypto.sign(algorithm, key, msg) == expected
    assert crypto.sign(algorithm, key, memoryview(bytearray(msg))) == expected
    view = memoryview(msg)
    assert crypto.sign_parts(algorithm, key, [view[:20], view[20:50], view[50:]]) == expected


def test_3_1_4_1_gmac_nonce_binds_role_cancel_and_message_id() -> None:
    key = bytes(16)
    base = crypto.sign(AES_GMAC, key, _message(8, 0, 7, b"x"))
    assert crypto.sign(AES_GMAC, key, _message(8, 1, 7, b"x")) != base  # server role bit
    assert crypto.sign(AES_GMAC, key, _message(8, 0, 8, b"x")) != base  # MessageId
    # the CANCEL bit is checked against smbprotocol above


def test_3_1_4_1_hmac_sha256_is_truncated_hmac() -> None:
    key = b"k" * 16
    msg = _message(5, 0, 3, b"abc")
    zeroed = msg[:48] + bytes(16) + msg[64:]
    assert crypto.sign(HMAC_SHA256, key, msg) == hmac.digest(key, zeroed, "sha256")[:16]


@pytest.mark.parametrize("algorithm", ALL_SIGNING)
def test_3_1_4_1_sign_does_not_modify_buffer_and_verify(algorithm: int) -> None:
    key = b"\x42" * 16
    buf = bytearray(_message(9, 0, 11, b"payload" * 20))
    before = bytes(buf)
    sig = crypto.sign(algorithm, key, buf)
    assert bytes(buf) == before
    assert not crypto.verify(algorithm, key, buf)
    buf[48:64] = sig
    assert crypto.verify(algorithm, key, buf)
    assert crypto.verify(algorithm, key, memoryview(buf))
    for i in (0, 30, 47, 64, len(buf) - 1):
        bad = bytearray(buf)
        bad[i] ^= 1
        assert not crypto.verify(algorithm, key, bad)
    bad = bytearray(buf)
    bad[50] ^= 1  # the signature itself
    assert not crypto.verify(algorithm, key, bad)
    assert not crypto.verify(algorithm, key, buf[:63])


@pytest.mark.parametrize("flags", [0, 1])
def test_3_1_4_1_large_gmac_verify_in_place_leaves_the_buffer_as_it_was(flags: int) -> None:
    """A large writable message is verified with its Signature field zeroed in place for
    the computation: the result equals smbprotocol's signature check, and the buffer
    (signature included) is unchanged afterwards, whether the signature is right or not."""
    key = bytes(range(16, 32))
    msg = _message(0x0009, flags, 77, bytes(range(256)) * 4096)  # a 1 MiB WRITE
    sig = _smbprotocol_signature(AES_GMAC, key, msg, bool(flags & 1), 0x0009)
    buf = bytearray(msg)
    buf[48:64] = sig
    before = bytes(buf)
    assert crypto.verify(AES_GMAC, key, memoryview(buf))
    assert bytes(buf) == before
    assert crypto.verify(AES_GMAC, key, bytes(buf))  # read-only: the copying path
    for i in (0, 24, 50, 64, len(buf) - 1):
        buf[i] ^= 1
        bad = bytes(buf)
        assert not crypto.verify(AES_GMAC, key, memoryview(buf)[:])
        assert bytes(buf) == bad
        buf[i] ^= 1
    assert crypto.verify(AES_GMAC, b"\x01" * 16, memoryview(buf)) is False
    assert bytes(buf) == before


@settings(max_examples=60)
@given(
    algorithm=st.sampled_from(ALL_SIGNING),
    body=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=364), max_size=5),
)
def test_3_1_4_1_sign_parts_equals_sign(algorithm: int, body: bytes, cuts: list[int]) -> None:
    msg = _message(8, 1, 99, body)
    points = sorted({0, len(msg), *(c for c in cuts if c <= len(msg))})
    parts = [memoryview(msg)[a:b] for a, b in itertools.pairwise(points)]
    assert crypto.sign_parts(algorithm, b"\x07" * 16, parts) == crypto.sign(
        algorithm, b"\x07" * 16, msg
    )


@settings(max_examples=60)
@given(
    algorithm=st.sampled_from(ALL_SIGNING),
    size=st.sampled_from([0, 5, 300, 16 * 1024, 70_000]),  # both sides of the join threshold
    cuts=st.lists(st.integers(min_value=0, max_value=70_064), max_size=5),
)
def test_3_1_4_1_sign_parts_of_a_zeroed_message(algorithm: int, size: int, cuts: list[int]) -> None:
    """A response is built with a zero Signature field and signed as its parts are
    (``zeroed=True``): the same signature as over the whole message."""
    msg = bytearray(_message(8, 1, 99, bytes(range(256)) * (size // 256) + bytes(size % 256)))
    msg[48:64] = bytes(16)
    points = sorted({0, len(msg), *(c for c in cuts if c <= len(msg))})
    parts = [memoryview(msg)[a:b] for a, b in itertools.pairwise(points)]
    want = crypto.sign(algorithm, b"\x07" * 16, bytes(msg))
    assert crypto.sign_parts(algorithm, b"\x07" * 16, parts, zeroed=True) == want
    assert crypto.sign_parts(algorithm, b"\x07" * 16, parts) == want


def test_sign_rejects_short_message_and_unknown_algorithm() -> None:
    with pytest.raises(CryptoError):
        crypto.sign(AES_CMAC, bytes(16), bytes(63))
    with pytest.raises(ValueError):
        crypto.sign(9, bytes(16), bytes(64))


# --------------------------------------------------------------------------------------
# [MS-SMB2] 3.1.4.3 / 2.2.41 encryption: properties


def _key(cipher: int) -> bytes:
    return bytes(range(32 if cipher in (AES_256_CCM, AES_256_GCM) else 16))


@settings(max_examples=40)
@given(
    cipher=st.sampled_from(ALL_CIPHERS),
    session_id=st.integers(min_value=0, max_value=2**64 - 1),
    parts=st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=4),
)
def test_3_1_4_3_round_trip_all_ciphers(cipher: int, session_id: int, parts: list[bytes]) -> None:
    enc = Encryptor(cipher, _key(cipher), counting_rng)
    header, ciphertext = enc.encrypt(session_id, parts)
    assert len(header) == crypto.TRANSFORM_HEADER_SIZE
    assert len(ciphertext) == sum(map(len, parts))
    th = crypto.parse_transform_header(memoryview(header))
    assert th.flags == 1
    assert th.session_id == session_id
    assert th.original_size == len(ciphertext)
    assert crypto.decrypt(cipher, _key(cipher), memoryview(bytes(header) + bytes(ciphertext))) == (
        session_id,
        b"".join(parts),
    )


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_3_1_4_3_tampering_any_byte_fails(cipher: int) -> None:
    enc = Encryptor(cipher, _key(cipher), counting_rng)
    message = b"".join(enc.encrypt(5, [b"\xfeSMB" + bytes(80)]))
    # every byte counts, the unused nonce padding too (it is part of the AAD)
    for i in range(len(message)):
        bad = bytearray(message)
        bad[i] ^= 0x80
        with pytest.raises(CryptoError):
            crypto.decrypt(cipher, _key(cipher), memoryview(bad))


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_3_1_4_3_wrong_key_and_malformed_fail(cipher: int) -> None:
    key = _key(cipher)
    enc = Encryptor(cipher, key, counting_rng)
    message = b"".join(enc.encrypt(5, [b"hello world"]))
    other = bytes(b ^ 1 for b in key)
    with pytest.raises(CryptoError):
        crypto.decrypt(cipher, other, message)
    for short in (b"", message[:51], message[:52]):
        with pytest.raises(CryptoError):
            crypto.decrypt(cipher, key, short)
    with pytest.raises(CryptoError):  # one byte missing: OriginalMessageSize mismatch
        crypto.decrypt(cipher, key, message[:-1])
    with pytest.raises(CryptoError):  # trailing byte
        crypto.decrypt(cipher, key, message + b"\0")
    with pytest.raises(CryptoError):
        crypto.decrypt(cipher, key, b"\xfeSMB" + message[4:])


def test_2_2_41_parse_transform_header() -> None:
    th = crypto.parse_transform_header(memoryview(ENC311_WRITE_RESPONSE_TRANSFORMED))
    assert th.signature == h("ACBE1CB7ED343ADF1725EF144D90D4B0")
    assert th.nonce == h("E06831DD2E8EB7B40000000000000000")
    assert th.original_size == 80
    assert th.flags == 1
    assert th.session_id == ENC311_SESSION_ID
    with pytest.raises(CryptoError):
        crypto.parse_transform_header(ENC311_WRITE_RESPONSE_TRANSFORMED[:51])


@settings(max_examples=200)
@given(data=st.binary(max_size=120), cipher=st.sampled_from(ALL_CIPHERS))
def test_2_2_41_decrypt_fuzz_raises_only_crypto_error(data: bytes, cipher: int) -> None:
    for candidate in (data, b"\xfdSMB" + data):
        try:
            crypto.decrypt(cipher, _key(cipher), memoryview(candidate))
        except CryptoError as exc:
            assert exc.disconnect


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_3_1_4_3_nonces_unique_and_exhaustion(cipher: int) -> None:
    enc = Encryptor(cipher, _key(cipher), lambda n: b"\xff" * n, max_messages=1000)
    nonces = set()
    for _ in range(1000):
        header, _ct = enc.encrypt(1, [b"x"])
        nonces.add(header[20:36])
    assert len(nonces) == 1000  # wraps from all-ones to zero without repeating
    with pytest.raises(CryptoError):
        enc.encrypt(1, [b"x"])
    assert enc.statistics() == {"messages": 1000, "remaining": 0}


def test_3_1_4_3_two_encryptors_same_key_get_disjoint_nonces() -> None:
    import random

    rng_a = random.Random(1)
    rng_b = random.Random(2)
    a = Encryptor(AES_128_GCM, bytes(16), rng_a.randbytes)
    b = Encryptor(AES_128_GCM, bytes(16), rng_b.randbytes)
    na = {a.encrypt(1, [b"x"])[0][20:32] for _ in range(200)}
    nb = {b.encrypt(1, [b"x"])[0][20:32] for _ in range(200)}
    assert not na & nb


def test_encryptor_rejects_bad_key_and_cipher() -> None:
    with pytest.raises(ValueError):
        Encryptor(AES_256_GCM, bytes(16), counting_rng)
    with pytest.raises(ValueError):
        Encryptor(7, bytes(16), counting_rng)
    with pytest.raises(ValueError):
        Encryptor(AES_128_GCM, bytes(16), counting_rng).encrypt(1, [b""])


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
def test_3_1_4_3_large_messages_round_trip_and_match_one_shot_aead(cipher: int) -> None:
    # Large GCM messages take the streaming path; the result must be what the one-shot
    # AEAD computes for the same nonce, and tampering must still be caught.
    key = _key(cipher)
    nonce = bytes(range(1, 13))[: 11 if cipher in (AES_128_CCM, AES_256_CCM) else 12]
    payload = bytes(range(256)) * 400  # 100 KiB
    parts: list[bytes | memoryview] = [payload[:64], memoryview(payload)[64:]]
    header, ciphertext = Encryptor(cipher, key, fixed_rng(nonce)).encrypt(7, parts)
    aead = AESCCM(key) if cipher in (AES_128_CCM, AES_256_CCM) else AESGCM(key)
    sealed = aead.encrypt(nonce, payload, header[20:52])
    assert ciphertext == sealed[:-16]
    assert header[4:20] == sealed[-16:]
    message = bytes(header) + bytes(ciphertext)
    assert crypto.decrypt(cipher, key, memoryview(message)) == (7, payload)
    for pos in (4, 30, 52, len(message) // 2, len(message) - 1):
        bad = bytearray(message)
        bad[pos] ^= 1
        with pytest.raises(CryptoError):
            crypto.decrypt(cipher, key, memoryview(bad))


@pytest.mark.parametrize("cipher", ALL_CIPHERS)
@pytest.mark.parametrize("size", [200, 70000])
def test_3_1_4_3_encryption_interoperates_with_smbprotocol(cipher: int, size: int) -> None:
    # smbprotocol's Connection._encrypt/_decrypt, with its session holding the client's
    # view of our keys (its encryption key is our decryption key).
    keys = crypto.derive_keys(bytes(range(16)), 0x0311, hashlib.sha512(b"x").digest(), cipher)
    session = SimpleNamespace(
        session_id=0x1122, encryption_key=keys.decryption, decryption_key=keys.encryption
    )
    conn = SimpleNamespace(dialect=0x0311, cipher_id=cipher, session_table={0x1122: session})
    message = b"\xfeSMB" + bytes(range(256)) * (size // 256) + b"tail"
    from_client = SmbprotocolConnection._encrypt(conn, message, session).pack()
    assert crypto.decrypt(cipher, keys.decryption, memoryview(from_client)) == (0x1122, message)
    header, ciphertext = Encryptor(cipher, keys.encryption, counting_rng).encrypt(0x1122, [message])
    transformed = SMB2TransformHeader()
    transformed.unpack(bytes(header) + bytes(ciphertext))
    assert SmbprotocolConnection._decrypt(conn, transformed) == message
