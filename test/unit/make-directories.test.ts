/**
 * The one mkdir -p shared by weftd and the CNI plugin, and weftd's subnet file writer on top of it: paths
 * where Node's own recursive mkdir spins forever (under /proc) must fail at once.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadOrCreateKey } from "../../src/backend/wireguard/wireguard-key.js";
import { makeDirectories } from "../../src/fs/make-directories.js";
import { formatCIDR, parseCIDR } from "../../src/ip/ip-network.js";
import { readPreviousSubnets, writeSubnetEnv } from "../../src/lease/subnet-env.js";
import { UserError } from "../../src/user-error.js";

const root = mkdtempSync(join(tmpdir(), "weft-mkdir-"));
after(() => rmSync(root, { recursive: true, force: true }));

function codeOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    return String((err as NodeJS.ErrnoException).code);
  }
  return "no error";
}

describe("makeDirectories", () => {
  it("creates missing parents with the mode, and accepts what exists", () => {
    const path = join(root, "a/b/c");
    makeDirectories(path, 0o700);
    assert.ok(statSync(path).isDirectory());
    assert.equal(statSync(join(root, "a")).mode & 0o777, 0o700);
    makeDirectories(path, 0o700);
    makeDirectories(`${path}/`, 0o700);
    makeDirectories("/", 0o755);
  });

  it("fails at once under /proc, where the parent exists but cannot hold directories", () => {
    const started = Date.now();
    assert.equal(
      codeOf(() => makeDirectories("/proc/weft-test/x/y", 0o755)),
      "ENOENT",
    );
    assert.equal(
      codeOf(() => makeDirectories("/proc/weft-test", 0o755)),
      "ENOENT",
    );
    assert.ok(Date.now() - started < 1000, "bounded work");
  });

  it("refuses a dangling symlink in the way, naming it", () => {
    const link = join(root, "dangling");
    symlinkSync(join(root, "nowhere/at/all"), link);
    try {
      makeDirectories(join(link, "sub"), 0o755);
      assert.fail("no error");
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      assert.equal(e.code, "ENOTDIR");
      assert.equal(e.syscall, "mkdir");
      assert.equal(e.path, link);
    }
  });

  it("refuses a file in the way (ENOTDIR), as Go's MkdirAll", () => {
    const file = join(root, "file");
    writeFileSync(file, "");
    assert.equal(
      codeOf(() => makeDirectories(file, 0o755)),
      "ENOTDIR",
    );
    assert.equal(
      codeOf(() => makeDirectories(join(file, "sub"), 0o755)),
      "ENOTDIR",
    );
  });

  it("follows a symlink to a directory", () => {
    mkdirSync(join(root, "real"));
    symlinkSync(join(root, "real"), join(root, "link"));
    makeDirectories(join(root, "link/inside"), 0o755);
    assert.ok(existsSync(join(root, "real/inside")));
  });
});

describe("the WireGuard key file's directory", () => {
  it("a WIREGUARD_KEY_FILE under /proc fails at once (it spun in Node's recursive mkdir)", async () => {
    await assert.rejects(loadOrCreateKey("/proc/weft-test/wg/key"), (err: unknown) => {
      return (
        (err as NodeJS.ErrnoException).code === "ENOENT" &&
        (err as NodeJS.ErrnoException).path === "/proc/weft-test"
      );
    });
  });
});

describe("readPreviousSubnets", () => {
  it("reads what writeSubnetEnv wrote; nothing from /dev/zero, a FIFO, a directory or swapped families", async () => {
    const path = join(root, "prev/subnet.env");
    await writeSubnetEnv(path, {
      network: parseCIDR("10.244.0.0/16"),
      subnet: parseCIDR("10.244.9.0/24"),
      ipv6Network: undefined,
      ipv6Subnet: undefined,
      mtu: 1450,
      ipMasq: false,
    });
    assert.equal(formatCIDR((await readPreviousSubnets(path)).subnet!), "10.244.9.0/24");
    const fifo = join(root, "fifo");
    execFileSync("mkfifo", [fifo]);
    const swapped = join(root, "swapped.env");
    writeFileSync(swapped, "FLANNEL_SUBNET=fd00::1/64\nFLANNEL_IPV6_SUBNET=10.244.9.1/24\n");
    for (const p of ["/dev/zero", fifo, root, swapped]) {
      assert.deepEqual(await readPreviousSubnets(p), { subnet: undefined, ipv6Subnet: undefined }, p);
    }
  });
});

describe("writeSubnetEnv", () => {
  const env = {
    network: parseCIDR("10.244.0.0/16"),
    subnet: parseCIDR("10.244.7.0/24"),
    ipv6Network: undefined,
    ipv6Subnet: undefined,
    mtu: 1450,
    ipMasq: true,
  };

  async function failure(path: string): Promise<UserError> {
    try {
      await writeSubnetEnv(path, env);
    } catch (err) {
      assert.ok(err instanceof UserError, `a UserError, not ${String(err)}`);
      return err;
    }
    assert.fail("no error");
  }

  it("writes the file, creating its directory, and leaves no temp file", async () => {
    const path = join(root, "run/flannel/subnet.env");
    await writeSubnetEnv(path, env);
    assert.deepEqual(readdirSync(join(root, "run/flannel")), ["subnet.env"]);
  });

  it("--subnet-file under /proc fails at once with one error naming the file and the flag", async () => {
    const e = await failure("/proc/weft-test/sub.env");
    assert.match(e.message, /^cannot write the subnet file \/proc\/weft-test\/sub\.env: ENOENT: /);
    assert.match(e.hint ?? "", /--subnet-file/);
  });

  it("--subnet-file pointing at a directory fails and leaves no temp file behind", async () => {
    const dir = join(root, "is-a-dir");
    mkdirSync(dir);
    const e = await failure(dir);
    assert.equal(e.message, `cannot write the subnet file ${dir}: it is a directory`);
    assert.deepEqual(
      readdirSync(root).filter((n) => n.startsWith(".")),
      [],
      "no .is-a-dir left",
    );
    assert.deepEqual(readdirSync(dir), []);
  });
});
