// Packs indexer/substreams/substreams.yaml into a .spkg with npm's @substreams/manifest (the
// reference JS implementation of manifest → sf.substreams.v1.Package; it compiles the
// .proto with the npm `buf` binary) and prints what the package holds. Run by
// `cargo xtask substreams` from the npm prefix it installs into (imports resolve there).
// Usage: node pack.mjs <substreams.yaml> <module.wasm> <out.spkg>
import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { parseManifestJson, convertManifestToPackage } from "@substreams/manifest";
import { Package } from "@substreams/core/proto";
const [manifestPath, wasmPath, out] = process.argv.slice(2);
const json = parse(fs.readFileSync(manifestPath, "utf-8"));
json.binaries.default.file = path.relative(path.dirname(manifestPath), path.resolve(wasmPath));
(async () => {
  const manifest = parseManifestJson(json);
  const pkg = await convertManifestToPackage(manifest, path.dirname(manifestPath));
  const bin = pkg.toBinary();
  fs.writeFileSync(out, bin);
  // What a Substreams server needs from it, read back from the written bytes.
  const back = Package.fromBinary(fs.readFileSync(out));
  const check = (ok, what) => { if (!ok) throw new Error(`package: ${what}`); };
  const mods = back.modules.modules;
  check(mods.length === 1 && mods[0].name === "map_events", "one module, map_events");
  check(mods[0].binaryEntrypoint === "map_events", "entrypoint map_events");
  check(mods[0].output?.type === "proto:advancia.indexer.v1.Rows", "output Rows");
  check(mods[0].inputs[0]?.input.value.type === "sf.solana.type.v1.Block", "input Block");
  check(back.protoFiles.some((f) => f.name === "advancia/indexer/v1/rows.proto"), "rows.proto");
  check(back.modules.binaries[0].content.length === fs.statSync(wasmPath).size, "wasm embedded");
  const m = pkg.modules.modules.map((m) => ({
    name: m.name, kind: m.kind.case, output: m.output?.type,
    inputs: m.inputs.map((i) => i.input.value.type),
    binaryEntrypoint: m.binaryEntrypoint, binaryIndex: m.binaryIndex,
  }));
  console.log(JSON.stringify({
    bytes: bin.length, network: pkg.network,
    protoFiles: pkg.protoFiles.map((f) => f.name),
    binaries: pkg.modules.binaries.map((b) => ({ type: b.type, bytes: b.content.length })),
    modules: m,
  }, null, 1));
})().catch((e) => { console.error(e); process.exit(1); });
