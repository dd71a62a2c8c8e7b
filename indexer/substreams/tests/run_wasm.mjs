// Runs the module's wasm the way the Substreams runtime calls it, on node's WebAssembly:
// for each <dir>/block-N.pb, alloc + copy the encoded sf.solana.type.v1.Block into the
// module's memory, call map_events(ptr, len), and write what the module handed to the host
// `output` import to <dir>/out-N.pb (nothing when it skipped an empty output; the panic
// message it registered to <dir>/panic-N.txt). Usage: node run_wasm.mjs <wasm> <dir>
import fs from "node:fs";
import path from "node:path";

const [wasmPath, dir] = process.argv.slice(2);
const { instance } = await WebAssembly.instantiate(fs.readFileSync(wasmPath), {
  env: {
    output: (ptr, len) => { current.output = mem().slice(ptr, ptr + len); },
    skip_empty_output: () => { current.skip = true; },
    register_panic: (mp, ml, fp, fl, line, col) => {
      const text = (p, l) => new TextDecoder().decode(mem().slice(p, p + l));
      current.panic = `${text(mp, ml)} at ${text(fp, fl)}:${line}:${col}`;
    },
  },
  logger: { println: () => {} },
});
const mem = () => new Uint8Array(instance.exports.memory.buffer);
let current = {};
const blocks = fs.readdirSync(dir).filter((f) => /^block-\d+\.pb$/.test(f)).sort();
for (const file of blocks) {
  const n = file.match(/\d+/)[0];
  const bytes = fs.readFileSync(path.join(dir, file));
  current = {};
  const ptr = instance.exports.alloc(bytes.length);
  mem().set(bytes, ptr);
  try {
    instance.exports.map_events(ptr, bytes.length);
  } catch (e) {
    // A Rust panic ends in `unreachable` after register_panic.
    fs.writeFileSync(path.join(dir, `panic-${n}.txt`), current.panic ?? String(e));
    continue;
  }
  if (current.output) fs.writeFileSync(path.join(dir, `out-${n}.pb`), current.output);
}
console.log(`ran ${blocks.length} blocks`);
