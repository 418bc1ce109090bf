// weftd's resident memory with 1,000 peers, kube mode against etcd mode, on the lab (real kernel).
// Run: node dist/bench/kube-rss.js  (root; builds nothing; prints a JSON line and a table row).
import { readFileSync } from "node:fs";
import { DEFAULT_ADMIN_TOKEN } from "../test/kube-api/identities.js";
import { nodeObject } from "../test/kube-api/in-process.js";
import { LAB_API_URL, startLabApi } from "../test/kube-api/lab-api.js";
import { Lab, type LabProcess } from "../test/lab/lab.js";

const PEERS = Number(process.env.PEERS ?? 1000);
const NET_CONF = { Network: "10.0.0.0/8", SubnetLen: 24, Backend: { Type: "vxlan" } };

function peer(i: number): { subnet: string; key: string; ip: string; mac: string } {
  const n = i + 2; // 10.0.1.0/24 is ours
  const third = n & 255;
  const second = n >> 8;
  const hex = (v: number) => v.toString(16).padStart(2, "0");
  return {
    subnet: `10.${second}.${third}.0/24`,
    key: `10.${second}.${third}.0-24`,
    ip: `172.31.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`,
    mac: `02:00:00:00:${hex(i >> 8)}:${hex(i & 255)}`,
  };
}

function rssKb(pid: number): number {
  // The lab starts weftd under `ip netns exec`, which execs: the pid is weftd's.
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

async function measure(proc: LabProcess): Promise<number> {
  await proc.waitForOutput(new RegExp(`datapath programmed for ${PEERS} peer`), 120_000);
  await new Promise((r) => setTimeout(r, 3000));
  return rssKb(proc.pid);
}

/** Runs a script with node inside the fabric (where the API and etcd listen). */
function nodeScript(lab: Lab, source: string, timeoutMs = 120_000): Promise<string> {
  return lab.run(lab.fabric, [process.execPath, "--input-type=module"], { timeoutMs, input: source });
}

async function kubeMode(): Promise<number> {
  const lab = await Lab.create({ hosts: 1, tag: "kuberss" });
  try {
    const api = await startLabApi(lab);
    const host = lab.host(1);
    await api.createNode("node1", ["10.0.1.0/24"], host.ip);
    const objects = Array.from({ length: PEERS }, (_, i) => {
      const p = peer(i);
      return nodeObject(`peer-${i}`, [p.subnet], p.ip, {
        "flannel.alpha.coreos.com/backend-data": `{"VNI":1,"VtepMAC":"${p.mac}"}`,
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/public-ip": p.ip,
      });
    });
    await nodeScript(
      lab,
      `import { request } from "node:https"; import { readFileSync } from "node:fs";
       const ca = readFileSync(${JSON.stringify(api.caFile)}); const objects = ${JSON.stringify(objects)};
       const post = (o) => new Promise((res, rej) => { const r = request(${JSON.stringify(`${LAB_API_URL}/api/v1/nodes`)}, { method: "POST", ca, headers: { authorization: "Bearer ${DEFAULT_ADMIN_TOKEN}", "content-type": "application/json" } }, (s) => { s.resume(); s.on("end", () => s.statusCode === 201 ? res() : rej(new Error(String(s.statusCode)))); }); r.on("error", rej); r.end(JSON.stringify(o)); });
       for (let i = 0; i < objects.length; i += 50) await Promise.all(objects.slice(i, i + 50).map(post));`,
    );
    const proc = await lab.startWeftd(host, api.weftdArgs(host, NET_CONF), { NODE_NAME: "node1" });
    return await measure(proc);
  } finally {
    await lab.destroy();
  }
}

async function etcdMode(): Promise<number> {
  const lab = await Lab.create({ hosts: 1, tag: "etcdrss" });
  try {
    await lab.startEtcd();
    const puts = Array.from({ length: PEERS }, (_, i) => {
      const p = peer(i);
      return [
        `/coreos.com/network/subnets/${p.key}`,
        `{"PublicIP":"${p.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${p.mac}"}}`,
      ];
    });
    puts.push(["/coreos.com/network/config", JSON.stringify(NET_CONF)]);
    await nodeScript(
      lab,
      // Through etcd's JSON gateway, as weftd itself talks to etcd.
      `const b64 = (t) => Buffer.from(t).toString("base64"); const puts = ${JSON.stringify(puts)};
       const put = async ([k, v]) => { const r = await fetch(${JSON.stringify(`${lab.etcdEndpoint}/v3/kv/put`)}, { method: "POST", body: JSON.stringify({ key: b64(k), value: b64(v) }) }); if (!r.ok) throw new Error(String(r.status)); };
       for (let i = 0; i < puts.length; i += 100) await Promise.all(puts.slice(i, i + 100).map(put));`,
    );
    const proc = await lab.startWeftd(lab.host(1));
    return await measure(proc);
  } finally {
    await lab.destroy();
  }
}

const kubeKb = await kubeMode();
const etcdKb = await etcdMode();
const mb = (kb: number) => (kb / 1024).toFixed(1);
console.log(
  JSON.stringify({
    peers: PEERS,
    kubeRssKb: kubeKb,
    etcdRssKb: etcdKb,
    deltaMb: Number(mb(kubeKb - etcdKb)),
  }),
);
console.log(
  `| weftd RSS, ${PEERS} peers, vxlan | etcd mode ${mb(etcdKb)} MB | kube mode ${mb(kubeKb)} MB | difference ${mb(kubeKb - etcdKb)} MB |`,
);
