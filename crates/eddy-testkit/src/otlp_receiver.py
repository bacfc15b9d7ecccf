"""A local OTLP/HTTP trace receiver for Eddy's tests.

Accepts POST /v1/traces with a JSON body, decodes it with the official
OpenTelemetry protobuf definitions (opentelemetry-proto from PyPI) after
checking the OTLP/JSON rule that trace and span ids are hex (not base64),
and appends each span, flattened, to DIR/spans.ndjson. A body that does
not decode is answered 400 and its error appended to DIR/errors.txt.

Usage: python3 receiver.py PORT DIR
"""

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

PORT, DIR = int(sys.argv[1]), sys.argv[2]
ID_LENGTHS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}


def ids_to_base64(node):
    """OTLP/JSON writes ids as hex; protobuf's JSON reader wants base64."""
    if isinstance(node, list):
        for item in node:
            ids_to_base64(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ID_LENGTHS and isinstance(value, str):
                if value == "" and key == "parentSpanId":
                    continue
                if len(value) != ID_LENGTHS[key]:
                    raise ValueError(f"{key} {value!r} is not {ID_LENGTHS[key]} hex digits")
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                ids_to_base64(value)


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def flatten(request):
    for rs in request.resource_spans:
        resource = {a.key: value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield {
                    "name": s.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": {a.key: value(a.value) for a in s.attributes},
                    "events": [e.name for e in s.events],
                    "resource": resource,
                    "scope": ss.scope.name,
                }


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            if self.path != "/v1/traces":
                raise ValueError(f"unexpected path {self.path}")
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                raise ValueError(f"content type {self.headers.get('Content-Type')}")
            doc = json.loads(body)
            ids_to_base64(doc)
            request = ExportTraceServiceRequest()
            json_format.ParseDict(doc, request)
        except Exception as e:  # the test reads the reason
            with open(f"{DIR}/errors.txt", "a") as f:
                f.write(f"{e}\n")
            self.send_response(400)
            self.end_headers()
            return
        with open(f"{DIR}/spans.ndjson", "a") as f:
            for span in flatten(request):
                f.write(json.dumps(span) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
