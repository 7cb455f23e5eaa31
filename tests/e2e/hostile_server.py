#!/usr/bin/python3
"""A hostile or broken coordinator for the client's side of the threat model: a gRPC server
(Debian's Python gRPC, stubs generated from protos/ at test time, TLS with the development
certificates) that answers CheckIn and GetModel with what one mode says, and nothing else.

    hostile_server.py GEN_DIR CERT_PEM KEY_PEM PORT_FILE MODE

MODE:
  huge      a model of 2^32 bytes (more than any model of the client's catalogue can have)
  header    a size a model of the catalogue could have, but a first chunk whose header
            implies another size (or another catalogue)
  stop      an unsigned "training stopped" with the model the client already has (version 0)
  cathash   a model naming a catalogue, and a well-formed catalogue whose bytes do not hash to
            the name
  cathuge   a model naming a catalogue of 2^40 bytes
The server writes its port to PORT_FILE and serves until killed.
"""
import struct
import sys
from concurrent import futures

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from fedrec.v1 import catalogue_pb2  # noqa: E402
from fedrec.v1 import coordinator_pb2 as pb  # noqa: E402
from fedrec.v1 import coordinator_pb2_grpc as pb_grpc  # noqa: E402

MODE = sys.argv[5]
# a catalogue the client would accept: 50 items of 4 dimensions
CATALOGUE = catalogue_pb2.Catalogue(version=1, dim=4, ids=[f"i{k}" for k in range(50)],
                                    content=b"\0" * (4 * 4 * 50)).SerializeToString()


def info():
    if MODE == "huge":
        return pb.ModelInfo(version=2, size_bytes=1 << 32, blake2b_hash=b"\0" * 32, signature=b"\0" * 64, ledger_head=b"\0" * 32)
    if MODE == "header":
        # 50 items, p = 4 content dimensions, d = 8, no free embeddings: 32 + 4 * 8 * 4 bytes
        return pb.ModelInfo(version=2, size_bytes=32 + 4 * 32, blake2b_hash=b"\0" * 32, signature=b"\0" * 64, ledger_head=b"\0" * 32)
    if MODE in ("cathash", "cathuge"):
        size = len(CATALOGUE) if MODE == "cathash" else 1 << 40
        return pb.ModelInfo(version=2, size_bytes=32 + 4 * 32, blake2b_hash=b"\0" * 32, signature=b"\0" * 64,
                            ledger_head=b"\0" * 32,
                            catalogue=pb.CatalogueInfo(version=1, size_bytes=size, blake2b_hash=b"\1" * 32))
    return pb.ModelInfo(version=0, size_bytes=0)


class Hostile(pb_grpc.CoordinatorServiceServicer):
    def CheckIn(self, request, context):
        r = pb.CheckInResponse(accepted=False, round=1, retry_after_ms=1000, model=info())
        if MODE == "stop":
            r.stopped_reason = "training stopped: the privacy budget is spent (says nobody in particular)"
        return r

    def GetModel(self, request, context):
        if MODE == "header":
            # a header for 99 items (the catalogue has 50) and d = 8, p = 4
            head = b"FRMD" + struct.pack("<IQIIII", 1, 2, 99, 8, 4, 0)
            blob = head + b"\0" * (4 * 32)
            return pb.GetModelResponse(model=info(), offset=request.offset,
                                       chunk=blob[request.offset:request.offset + 64])
        context.abort(grpc.StatusCode.INTERNAL, "a client that checks sizes never asks")

    def GetCatalogue(self, request, context):
        if MODE == "cathash":
            return pb.GetCatalogueResponse(catalogue=info().catalogue, offset=request.offset,
                                           chunk=CATALOGUE[request.offset:request.offset + 1000])
        context.abort(grpc.StatusCode.INTERNAL, "a client that checks sizes never asks")


def main():
    gen, cert, key, port_file = sys.argv[1:5]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_CoordinatorServiceServicer_to_server(Hostile(), server)
    creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(cert, "rb").read())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    with open(port_file, "w") as f:
        f.write("%d\n" % port)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
