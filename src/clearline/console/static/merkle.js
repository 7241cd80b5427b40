// RFC 9162 §2.1.3.2: the root an inclusion proof implies, computed in the browser.
"use strict";
const Merkle = (() => {
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (text) => Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
  async function nodeHash(left, right) {
    const data = new Uint8Array(1 + left.length + right.length);
    data[0] = 1; data.set(left, 1); data.set(right, 1 + left.length);
    return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  }
  async function rootFromInclusionProof(leafHex, index, size, proofHex) {
    if (index >= size) throw new Error(`index ${index} is outside a tree of ${size}`);
    let fn = BigInt(index), sn = BigInt(size - 1), r = unhex(leafHex);
    for (const p of proofHex.map(unhex)) {
      if (sn === 0n) throw new Error("the proof is longer than the tree allows");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) { while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; } }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof is shorter than the tree needs");
    return hex(r);
  }
  return { rootFromInclusionProof };
})();
