"""A small HTTP/1.1 proxy for the tests, in front of the real local PDS, that fails on demand the way networks do.

One request per connection (it asks the PDS to close, so every request is seen). For requests whose path contains
a given string, the next `times` are:
- `drop_after`: forwarded, the PDS's whole answer read (so the PDS committed), then the client's connection is
  closed without a byte: Skyport sees a reset and cannot know the write landed;
- `drop_before`: the client's connection is closed before anything is forwarded (nothing happened);
- `503`: answered `503 Service Unavailable` without forwarding.

`hold(path_part)` stops the next such request before it is forwarded until the test releases it (`Hold.reached` is
set when it arrives): a request in flight for as long as a test needs, to race something against it.

`latency` (seconds) delays every request on its way to the PDS and every answer on its way back, as a network
between Skyport and a PDS elsewhere would (the benchmarks use it).
"""

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Fault:
    path_part: str
    mode: str  # "drop_after", "drop_before", "503"
    times: int = 1


@dataclass
class Hold:
    path_part: str
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class FaultProxy:
    upstream_port: int
    faults: list[Fault] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    applied: list[tuple[str, str]] = field(default_factory=list)
    latency: float = 0.0

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._holds: list[Hold] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, path_part: str, mode: str, times: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(path_part, mode, times))

    def hold(self, path_part: str) -> Hold:
        """Stop the next request whose path contains `path_part` until `release()` (then it goes on normally)."""
        held = Hold(path_part)
        with self._lock:
            self._holds.append(held)
        return held

    def stop(self) -> None:
        self._stopped = True
        self._server.close()

    def chaos(self, path_part: str, modes: dict[str, float], seed: int = 1) -> None:
        """From now on, each request whose path contains `path_part` meets a fault chosen at random: e.g.
        `{"drop_after": 0.1, "503": 0.1}` drops a tenth of the answers after forwarding and refuses another tenth."""
        import random

        self._chaos = (path_part, modes, random.Random(seed))

    def _fault_for(self, path: str) -> str | None:
        chaos = getattr(self, "_chaos", None)
        if chaos and chaos[0] in path:
            roll = chaos[2].random()
            for mode, share in chaos[1].items():
                if roll < share:
                    with self._lock:
                        self.applied.append((path, mode))
                    return mode
                roll -= share
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.path_part in path:
                    fault.times -= 1
                    self.applied.append((path, fault.mode))
                    return fault.mode
        return None

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    @staticmethod
    def _read_request(client: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _handle(self, client: socket.socket) -> None:
        with client:
            request = self._read_request(client)
            if not request:
                return
            head, _, body = request.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1].decode()
            self.seen.append(path)
            with self._lock:
                held = next((h for h in self._holds if h.path_part in path), None)
                if held is not None:
                    self._holds.remove(held)
            if held is not None:
                held.reached.set()
                held.released.wait(timeout=60)
            mode = self._fault_for(path)
            if mode == "drop_before":
                client.shutdown(socket.SHUT_RDWR)
                return
            if mode == "503":
                payload = b'{"error":"InternalServerError","message":"try later"}'
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                return
            headers = [line for line in lines[1:] if not line.lower().startswith((b"connection:", b"keep-alive:"))]
            forwarded = b"\r\n".join([lines[0], *headers, b"Connection: close"]) + b"\r\n\r\n" + body
            time.sleep(self.latency)
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(forwarded)
                answer = b""
                while chunk := upstream.recv(65536):
                    answer += chunk
            if mode == "drop_after":
                client.shutdown(socket.SHUT_RDWR)  # the PDS has committed; the caller never hears of it
                return
            time.sleep(self.latency)
            client.sendall(answer)
