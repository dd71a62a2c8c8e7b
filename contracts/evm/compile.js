// Compiles the bridge contracts with solcjs (npm `solc`, run by `cargo xtask evm`) and prints
// writes <out dir>/<Contract>.json = { abi, bytecode, deployedBytecode } for every contract.
// Usage: node compile.js <contracts/evm dir> <out dir>
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = process.argv[2];
const outDir = process.argv[3];
const sources = {};
for (const dir of ["src", "test"]) {
  for (const file of fs.readdirSync(path.join(root, dir)).sort()) {
    if (file.endsWith(".sol")) {
      const key = `${dir}/${file}`;
      sources[key] = { content: fs.readFileSync(path.join(root, key), "utf8") };
    }
  }
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    // No metadata hash: the committed bytecode depends on the sources and settings only.
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
// Warnings fail the build too: the artifacts are committed and must compile clean.
const errors = (output.errors || []).filter((e) => e.severity !== "info");
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + "\n");
if (errors.length > 0) process.exit(1);
fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    const artifact = {
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
  }
}
process.stdout.write(solc.version() + "\n");
