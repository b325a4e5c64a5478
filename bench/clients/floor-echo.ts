// Floor: a raw Node Unix-socket echo server, no framing, no codec.
import { createServer } from "node:net";

const [socket] = process.argv.slice(2) as [string];
const server = createServer((conn) => conn.pipe(conn));
server.listen(socket, () => process.stdout.write("ready\n"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
