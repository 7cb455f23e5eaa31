"""Hostile calls around aggregators (tests/e2e/aggregators.sh): each must get its status code.
   aggregator_probe.py GEN_DIR CERTS_DIR COORD_PORT AGG_LISTEN_PORT AGGREGATOR_PORT TOKEN"""
import os
import sys

import grpc

gen, certs, port, aport, agg, token = sys.argv[1:7]
sys.path.insert(0, gen)
from fedrec.v1 import coordinator_pb2 as pb  # noqa: E402
from fedrec.v1 import coordinator_pb2_grpc as rpc  # noqa: E402


def read(name):
    with open(os.path.join(certs, name), "rb") as f:
        return f.read()


def status(f):
    try:
        f()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


failures = 0


def expect(what, got, want):
    global failures
    ok = got == want
    failures += not ok
    print(f"{'ok' if ok else 'FAIL':4} {what:62} {got} (want {want})")


ca = read("ca.pem")
bearer = [("authorization", "Bearer " + token)]
coord = grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca))
expect("GetAssignment on the devices' port with a device token",
       status(lambda: rpc.AggregatorServiceStub(coord).GetAssignment(pb.GetAssignmentRequest(), metadata=bearer, timeout=10)),
       "UNAUTHENTICATED")
expect("SubmitAggregate on the devices' port with a device token",
       status(lambda: rpc.AggregatorServiceStub(coord).SubmitAggregate(pb.SubmitAggregateRequest(round=1), metadata=bearer, timeout=10)),
       "UNAUTHENTICATED")
dev_cert = grpc.ssl_channel_credentials(ca, read("client.key"), read("client.pem"))
with_dev = grpc.secure_channel(f"127.0.0.1:{aport}", dev_cert)
expect("GetAssignment on the aggregators' port with a device-CA certificate",
       status(lambda: rpc.AggregatorServiceStub(with_dev).GetAssignment(pb.GetAssignmentRequest(), timeout=10)), "UNAVAILABLE")
no_cert = grpc.secure_channel(f"127.0.0.1:{aport}", grpc.ssl_channel_credentials(ca))
expect("GetAssignment on the aggregators' port without a certificate",
       status(lambda: rpc.AggregatorServiceStub(no_cert).GetAssignment(pb.GetAssignmentRequest(), timeout=10)), "UNAVAILABLE")
agg_ch = grpc.secure_channel(f"127.0.0.1:{agg}", grpc.ssl_channel_credentials(ca))
dev = rpc.CoordinatorServiceStub(agg_ch)
req = pb.SubmitMaskedInputRequest(round=1, message=b"\x00" * 64)
expect("aggregator: SubmitMaskedInput without a ticket", status(lambda: dev.SubmitMaskedInput(req, timeout=10)), "UNAUTHENTICATED")
expect("aggregator: SubmitMaskedInput with the device's token as ticket",
       status(lambda: dev.SubmitMaskedInput(req, metadata=bearer, timeout=10)), "UNAUTHENTICATED")
expect("aggregator: SubmitMaskedInput with a made-up ticket",
       status(lambda: dev.SubmitMaskedInput(req, metadata=[("authorization", "Bearer " + "ab" * 16)], timeout=10)),
       "UNAUTHENTICATED")
expect("aggregator: CheckIn (not its method)",
       status(lambda: dev.CheckIn(pb.CheckInRequest(), metadata=bearer, timeout=10)), "UNIMPLEMENTED")
sys.exit(1 if failures else 0)
