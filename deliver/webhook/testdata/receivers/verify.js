// Verify a mailhook webhook (Standard Webhooks "v1" signature), stdlib only.
const crypto = require("node:crypto");

// headers: Node's lower-cased req.headers; body: the raw request Buffer,
// exactly as received (e.g. express.raw({type: "application/json"})).
function verify(secret, headers, body, toleranceSec = 300) {
  const id = headers["webhook-id"], ts = headers["webhook-timestamp"] || "";
  if (!id || !/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSec) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest();
  return (headers["webhook-signature"] || "").split(" ").some((sig) => {
    const [version, value] = sig.split(",");
    const got = Buffer.from(value || "", "base64");
    return version === "v1" && got.length === expected.length && crypto.timingSafeEqual(got, expected);
  });
}

module.exports = { verify };

if (require.main === module) { // used by the Go tests: verify.js SECRET HEADERS.json BODY
  const fs = require("node:fs");
  const h = Object.fromEntries(Object.entries(JSON.parse(fs.readFileSync(process.argv[3]))).map(([k, v]) => [k.toLowerCase(), v]));
  process.exit(verify(process.argv[2], h, fs.readFileSync(process.argv[4])) ? 0 : 1);
}
