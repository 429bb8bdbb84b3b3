// Bundle the page (browser) and the gRPC-Web check (Node) into dist/ with esbuild.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
for (const file of ["index.html", "style.css"]) copyFileSync(`src/${file}`, `dist/${file}`);
await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/app.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  logLevel: "warning",
});
await build({
  entryPoints: ["scripts/grpc-web-stream.ts"],
  outfile: "dist/node/grpc-web-stream.mjs",
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  logLevel: "warning",
});
