"""A queen stand-in on [::1] for tests/test_heartbeat_dns.sh: acks every
POST; prints its kernel-chosen port, then serves until killed."""
import http.server
import socket


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"status":"ok","message":"heartbeat received"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6


s = Server(("::1", 0), Handler)
print(s.server_address[1], flush=True)
s.serve_forever()
