/** One UAPI request over wireguard-go's unix socket: connect, write, read up to the empty line, close. */
import { connect } from "node:net";
import { join } from "node:path";

/** Where wireguard-go (and `wg`) keep the sockets; fixed in wireguard-go (ipc/uapi_linux.go). */
export const UAPI_SOCKET_DIR = "/var/run/wireguard";
const REQUEST_TIMEOUT_MS = 5000;

export function uapiSocketPath(device: string): string {
  return join(UAPI_SOCKET_DIR, `${device}.sock`);
}

export function uapiRequest(socketPath: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let answer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${socketPath} within ${REQUEST_TIMEOUT_MS} ms`));
    }, REQUEST_TIMEOUT_MS);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: string) => {
      answer += chunk;
      // The answer ends with "errno=N\n\n".
      if (/(?:^|\n)errno=-?\d+\n\n$/.test(answer)) {
        clearTimeout(timer);
        socket.end();
        resolve(answer);
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`${socketPath} closed before the answer ended`));
    });
  });
}
