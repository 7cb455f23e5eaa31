#!/usr/bin/python3
"""Interop: a client written with Debian's Python gRPC, from stubs generated out of protos/
at test time. It checks in, downloads the published model in chunks, and verifies its
BLAKE2b-256 hash and the coordinator's Ed25519 signature over
"fedrec-model-v3" || version (8 bytes, little endian) || hash || ledger entries (8 bytes,
little endian) || ledger head || catalogue version (8 bytes, little endian) || catalogue hash,
then downloads the catalogue the model names (GetCatalogue), checks its hash and decodes it as
a fedrec.v1.Catalogue.
    interop_client.py GEN_DIR TARGET CA_PEM TOKEN PUBLIC_KEY_HEX
"""
import hashlib
import struct
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402
from fedrec.v1 import catalogue_pb2  # noqa: E402
from fedrec.v1 import coordinator_pb2 as pb  # noqa: E402
from fedrec.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402  (generated below as grpc/health)


def main():
    _, _, target, ca, token, pk_hex = sys.argv
    creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
    ch = grpc.secure_channel(target, creds, options=[("grpc.max_receive_message_length", 64 << 20)])
    md = (("authorization", "Bearer " + token),)
    health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING, health
    stub = pb_grpc.CoordinatorServiceStub(ch)
    # a wrong token is refused
    try:
        stub.CheckIn(pb.CheckInRequest(model_only=True), metadata=(("authorization", "Bearer 1.00"),), timeout=10)
        raise SystemExit("FAIL: a bad token was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.code()
    ci = stub.CheckIn(pb.CheckInRequest(model_only=True), metadata=md, timeout=10)
    info = ci.model
    blob = b""
    while len(blob) < info.size_bytes:
        r = stub.GetModel(pb.GetModelRequest(version=info.version, offset=len(blob), max_bytes=4096), metadata=md, timeout=10)
        assert r.offset == len(blob) and r.chunk, "bad chunk"
        blob += r.chunk
    digest = hashlib.blake2b(blob, digest_size=32).digest()
    assert digest == info.blake2b_hash, "hash mismatch"
    assert len(info.ledger_head) == 32, "no ledger head in the model information"
    assert info.HasField("catalogue"), "the model names no catalogue"
    cat = info.catalogue
    msg = (b"fedrec-model-v3" + struct.pack("<Q", info.version) + digest + struct.pack("<Q", info.ledger_entries) + info.ledger_head
           + struct.pack("<Q", cat.version) + cat.blake2b_hash)
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk_hex)).verify(info.signature, msg)
    # a tampered model fails the same check
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk_hex)).verify(info.signature, msg[:-1] + bytes([msg[-1] ^ 1]))
        raise SystemExit("FAIL: a tampered hash verified")
    except Exception as e:  # cryptography raises InvalidSignature
        if "FAIL" in str(e):
            raise
    cblob = b""
    while len(cblob) < cat.size_bytes:
        r = stub.GetCatalogue(pb.GetCatalogueRequest(version=cat.version, offset=len(cblob), max_bytes=65536), metadata=md, timeout=10)
        assert r.offset == len(cblob) and r.chunk, "bad catalogue chunk"
        cblob += r.chunk
    assert hashlib.blake2b(cblob, digest_size=32).digest() == cat.blake2b_hash, "catalogue hash mismatch"
    c = catalogue_pb2.Catalogue.FromString(cblob)
    assert c.version == cat.version and len(c.content) == 4 * c.dim * len(c.ids), "catalogue does not decode"
    print(f"interop: catalogue version {c.version}: {len(c.ids)} items of {c.dim} content dimensions, {len(cblob)} bytes")
    print(f"interop: PASS (model version {info.version}, {len(blob)} bytes in {(len(blob) + 4095) // 4096} chunks, "
          f"hash and Ed25519 signature verified)")


if __name__ == "__main__":
    main()
