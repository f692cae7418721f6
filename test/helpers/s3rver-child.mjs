// Runs s3rver in its own process so the test process's memory reflects only the client side.
// argv: <directory> <bucket>. Reports {port} over IPC; exits when the parent disconnects.
import S3rver from "s3rver";

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  port: 0,
  address: "127.0.0.1",
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
});
const { port } = await server.run();
process.send?.({ port });
process.on("disconnect", () => {
  server.close().finally(() => process.exit(0));
});
