// biome-ignore-all lint/suspicious/noTemplateCurlyInString: command lines use ${NAME} as flannel configs do
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type CommandInput,
  peerInput,
  postStartupInput,
} from "../../src/backend/extension/command-inputs.js";
import { type CommandLine, parseCommandLine } from "../../src/backend/extension/command-line.js";
import { type CommandOutcome, processRunner } from "../../src/backend/extension/command-process.js";
import { PeerCommands } from "../../src/backend/extension/peer-commands.js";
import { parseNetworkConfig } from "../../src/config/network-config.js";
import { parseCIDR } from "../../src/ip/ip-network.js";
import type { Lease } from "../../src/lease/lease.js";

function command(text: string): CommandLine {
  const result = parseCommandLine(text);
  assert.ok(result.ok);
  return result.command;
}

function lease(subnet: string, publicIP: string, backendData: unknown = "aa:bb", type = "extension"): Lease {
  return {
    key: subnet.replace("/", "-"),
    subnet: parseCIDR(subnet),
    ipv6Subnet: undefined,
    attrs: { publicIP, publicIPv6: undefined, backendType: type, backendData, backendV6Data: undefined },
    reservation: false,
  };
}

interface Call {
  readonly program: string;
  readonly input: CommandInput;
}

/** A RunCommand that records calls; `fail` decides which fail. */
function fakeRunner(fail: (call: Call) => boolean = () => false, delayMs = 0) {
  const calls: Call[] = [];
  let running = 0;
  let maxRunning = 0;
  const run = async (cmd: CommandLine, input: CommandInput): Promise<CommandOutcome> => {
    const call = { program: cmd.text, input };
    calls.push(call);
    running++;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    running--;
    return fail(call)
      ? {
          ok: false,
          failure: "exit status 1",
          output: `no route for ${input.variables.SUBNET}`,
          truncated: false,
        }
      : { ok: true, failure: undefined, output: "", truncated: false };
  };
  return { calls, run, maxRunning: () => maxRunning };
}

function logs() {
  const lines: string[] = [];
  return {
    lines,
    log: { info: (m: string) => lines.push(`I ${m}`), warn: (m: string) => lines.push(`W ${m}`) },
  };
}

const fastBackoff = { minMs: 5, maxMs: 20, jitter: 0 };
const ADD = command("/bin/add $SUBNET");
const REMOVE = command("/bin/remove $SUBNET");

function make(run: ReturnType<typeof fakeRunner>["run"], concurrency = 8) {
  const { lines, log } = logs();
  const peers = new PeerCommands({ add: ADD, remove: REMOVE, run, log, backoff: fastBackoff, concurrency });
  return { peers, lines };
}

const summary = (calls: Call[]) => calls.map((c) => `${c.program.split(" ")[0]} ${c.input.variables.SUBNET}`);

async function waitFor(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("peer commands", () => {
  it("runs nothing before start() (PostStartupCommand first), then an add per peer", async () => {
    const runner = fakeRunner();
    const { peers } = make(runner.run);
    peers.update([lease("10.244.1.0/24", "172.31.0.2"), lease("10.244.2.0/24", "172.31.0.3")]);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(runner.calls.length, 0);
    peers.start();
    await peers.settled();
    assert.deepEqual(summary(runner.calls).sort(), ["/bin/add 10.244.1.0/24", "/bin/add 10.244.2.0/24"]);
    await peers.close();
  });

  it("passes the peer's variables and BackendData plus a newline on stdin", async () => {
    const runner = fakeRunner();
    const { peers } = make(runner.run);
    peers.start();
    const peer = { ...lease("10.244.1.0/24", "172.31.0.2", "aa:bb:cc") };
    peers.update([{ ...peer, ipv6Subnet: parseCIDR("fd44:0:0:1::/64") }]);
    await peers.settled();
    assert.deepEqual(runner.calls[0]!.input, {
      variables: {
        SUBNET: "10.244.1.0/24",
        IPV6SUBNET: "fd44:0:0:1::/64",
        PUBLIC_IP: "172.31.0.2",
        PUBLIC_IPV6: "",
      },
      stdin: "aa:bb:cc\n",
    });
    await peers.close();
  });

  it("the remove of a gone peer gets that peer's variables, after its add", async () => {
    const runner = fakeRunner(() => false, 10);
    const { peers } = make(runner.run);
    peers.start();
    peers.update([lease("10.244.1.0/24", "172.31.0.2", "mac-1")]);
    await waitFor(() => runner.calls.length === 1, "the add to start");
    peers.update([]); // gone while its add still runs
    await peers.settled();
    assert.deepEqual(summary(runner.calls), ["/bin/add 10.244.1.0/24", "/bin/remove 10.244.1.0/24"]);
    assert.deepEqual(runner.calls[1]!.input, runner.calls[0]!.input);
    await peers.close();
  });

  it("a peer that came and went before its add started runs nothing", async () => {
    const runner = fakeRunner();
    const { peers } = make(runner.run);
    peers.update([lease("10.244.1.0/24", "172.31.0.2")]);
    peers.update([]);
    peers.start();
    await peers.settled();
    assert.deepEqual(runner.calls, []);
    await peers.close();
  });

  it("an unchanged peer runs nothing again; a changed one runs its add again", async () => {
    const runner = fakeRunner();
    const { peers } = make(runner.run);
    peers.start();
    peers.update([lease("10.244.1.0/24", "172.31.0.2")]);
    await peers.settled();
    peers.update([lease("10.244.1.0/24", "172.31.0.2")]); // a relist: new objects, same values
    await peers.settled();
    assert.equal(runner.calls.length, 1);
    peers.update([lease("10.244.1.0/24", "172.31.0.9")]);
    await peers.settled();
    assert.equal(runner.calls.length, 2);
    assert.equal(runner.calls[1]!.input.variables.PUBLIC_IP, "172.31.0.9");
    await peers.close();
  });

  it("a failing add is retried with backoff, logged once with its output, and never blocks other peers", async () => {
    let failuresLeft = 4;
    const runner = fakeRunner(
      (call) => call.input.variables.SUBNET === "10.244.1.0/24" && failuresLeft-- > 0,
    );
    const { peers, lines } = make(runner.run);
    peers.start();
    peers.update([lease("10.244.1.0/24", "172.31.0.2"), lease("10.244.2.0/24", "172.31.0.3")]);
    // The healthy peer is done while the failing one is still backing off.
    await waitFor(() => summary(runner.calls).includes("/bin/add 10.244.2.0/24"), "the healthy peer's add");
    await waitFor(() => failuresLeft < 0 && peers.runs === 6, "the failing add to succeed");
    await peers.settled();
    const adds1 = summary(runner.calls).filter((c) => c === "/bin/add 10.244.1.0/24");
    assert.equal(adds1.length, 5);
    const warnings = lines.filter((l) => l.startsWith("W "));
    assert.deepEqual(warnings, [
      "W SubnetAddCommand for lease 10.244.1.0-24 failed: exit status 1; output: no route for 10.244.1.0/24; retrying with backoff",
    ]);
    assert.ok(
      lines.includes("I ran SubnetAddCommand for lease 10.244.1.0-24 after 5 attempts"),
      lines.join("\n"),
    );
    assert.equal(peers.failures, 4);
    await peers.close();
  });

  it("a peer that goes away while its add keeps failing runs its remove at once, with the add's variables", async () => {
    const runner = fakeRunner((call) => call.program.startsWith("/bin/add"));
    const { lines, log } = logs();
    const peers = new PeerCommands({
      add: ADD,
      remove: REMOVE,
      run: runner.run,
      log,
      backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 },
      concurrency: 8,
    });
    peers.start();
    peers.update([lease("10.244.1.0/24", "172.31.0.2")]);
    await waitFor(() => runner.calls.length === 1, "the first add");
    const started = Date.now();
    peers.update([]);
    await waitFor(() => runner.calls.length === 2, "the remove");
    assert.ok(Date.now() - started < 30_000, "the remove waited for the add's backoff");
    assert.deepEqual(summary(runner.calls), ["/bin/add 10.244.1.0/24", "/bin/remove 10.244.1.0/24"]);
    await peers.settled();
    assert.equal(lines.filter((l) => l.startsWith("W ")).length, 1);
    await peers.close();
  });

  it("another peer's change does not cut a failing peer's backoff short", async () => {
    const runner = fakeRunner((call) => call.input.variables.SUBNET === "10.244.1.0/24");
    const { log } = logs();
    const peers = new PeerCommands({
      add: ADD,
      remove: REMOVE,
      run: runner.run,
      log,
      backoff: { minMs: 60_000, maxMs: 60_000, jitter: 0 },
      concurrency: 8,
    });
    peers.start();
    const failing = lease("10.244.1.0/24", "172.31.0.2");
    peers.update([failing]);
    await peers.settled();
    for (let i = 2; i < 6; i++) {
      peers.update([failing, lease(`10.244.${i}.0/24`, "172.31.0.3")]);
      await peers.settled();
    }
    assert.deepEqual(
      summary(runner.calls).filter((c) => c === "/bin/add 10.244.1.0/24"),
      ["/bin/add 10.244.1.0/24"],
    );
    assert.equal(runner.calls.length, 1 + 4 + 3, "each other peer added, and removed when replaced");
    await peers.close();
  });

  it("bounds how many commands run at once", async () => {
    const runner = fakeRunner(() => false, 10);
    const { peers } = make(runner.run, 3);
    peers.start();
    peers.update(Array.from({ length: 12 }, (_, i) => lease(`10.244.${i}.0/24`, `172.31.0.${i + 2}`)));
    await peers.settled();
    assert.equal(runner.calls.length, 12);
    assert.equal(runner.maxRunning(), 3);
    await peers.close();
  });

  it("a peer whose BackendData is not a string is skipped with one warning, as flannel does", async () => {
    const runner = fakeRunner();
    const { peers, lines } = make(runner.run);
    peers.start();
    peers.update([lease("10.244.1.0/24", "172.31.0.2", { VtepMAC: "x" })]);
    await peers.settled();
    peers.update([lease("10.244.1.0/24", "172.31.0.2", { VtepMAC: "x" })]);
    await peers.settled();
    assert.deepEqual(runner.calls, []);
    assert.deepEqual(lines, [
      "W not running commands for lease 10.244.1.0-24: its BackendData is an object with 1 key(s), not the string an extension PreStartupCommand writes",
    ]);
    await peers.close();
  });
});

describe("command inputs", () => {
  it("PostStartupCommand gets this host's five variables; missing ones are empty", () => {
    const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"extension"}}');
    const own = lease("10.244.7.0/24", "172.31.0.2");
    assert.deepEqual(postStartupInput(config, own, own.attrs), {
      variables: {
        NETWORK: "10.244.0.0/16",
        SUBNET: "10.244.7.0/24",
        IPV6SUBNET: "",
        PUBLIC_IP: "172.31.0.2",
        PUBLIC_IPV6: "",
      },
      stdin: "\n",
    });
  });
  it("a peer without BackendData gets just a newline", () => {
    const base = lease("10.244.1.0/24", "172.31.0.2");
    for (const backendData of [undefined, null]) {
      const input = peerInput({ ...base, attrs: { ...base.attrs, backendData } });
      assert.ok("stdin" in input);
      assert.equal(input.stdin, "\n");
    }
  });
});

describe("command processes", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "weft-ext-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function script(name: string, body: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`);
    await chmod(path, 0o755);
    return path;
  }

  const input = (variables: Record<string, string>, stdin = "\n"): CommandInput => ({ variables, stdin });
  const run = processRunner({ timeoutMs: 5000, maxOutputBytes: 1024, killGraceMs: 200 });

  it("runs without a shell: hostile values arrive as single literal arguments", async () => {
    const out = join(dir, "args");
    const path = await script("args.sh", `for a in "$@"; do printf '[%s]\\n' "$a"; done > "${out}"`);
    const subnet = "10.0.0.0/24; touch owned $(touch owned2) `touch owned3` && x";
    const outcome = await run(
      command(`${path} $SUBNET x${"${PUBLIC_IP}"}`),
      input({ SUBNET: subnet, PUBLIC_IP: "a b" }),
    );
    assert.equal(outcome.ok, true, outcome.failure);
    assert.equal(await readFile(out, "utf8"), `[${subnet}]\n[xa b]\n`);
    await assert.rejects(readFile(join(dir, "owned")));
    await assert.rejects(readFile(join(process.cwd(), "owned")));
  });

  it("gives the variables in the environment and stdin, and returns stdout+stderr trimmed", async () => {
    const path = await script("env.sh", 'read line; echo "sub=$SUBNET in=$line"; echo warn >&2');
    const outcome = await run(command(path), input({ SUBNET: "10.1.0.0/24" }, "aa:bb\n"));
    assert.equal(outcome.ok, true);
    // Two pipes: the order between them is the order the chunks arrived in.
    assert.deepEqual(outcome.output.split("\n").sort(), ["sub=10.1.0.0/24 in=aa:bb", "warn"]);
    const spaced = await script("spaced.sh", "printf '\\n  aa:bb:cc \\n\\n'");
    assert.equal((await run(command(spaced), input({}))).output, "aa:bb:cc");
  });

  it("reports the exit status with the output", async () => {
    const path = await script("fail.sh", "echo 'RTNETLINK answers: File exists'; exit 3");
    const outcome = await run(command(path), input({}));
    assert.deepEqual(outcome, {
      ok: false,
      failure: "exit status 3",
      output: "RTNETLINK answers: File exists",
      truncated: false,
    });
  });

  it("a missing program is a failure, not a crash", async () => {
    const outcome = await run(command(join(dir, "nope")), input({}));
    assert.equal(outcome.ok, false);
    assert.match(outcome.failure!, /cannot start .*nope: ENOENT/);
  });

  it("kills a command that runs too long, by its pid", async () => {
    const slow = processRunner({ timeoutMs: 200, maxOutputBytes: 1024, killGraceMs: 200 });
    const path = await script("slow.sh", "echo started; exec sleep 30");
    const started = Date.now();
    const outcome = await slow(command(path), input({}));
    assert.equal(outcome.ok, false);
    assert.equal(outcome.failure, "timed out after 0.2 s");
    assert.equal(outcome.output, "started");
    assert.ok(Date.now() - started < 5000);
  });

  it("keeps only the first maxOutputBytes of output", async () => {
    const path = await script("loud.sh", "head -c 100000 /dev/zero | tr '\\0' x");
    const outcome = await run(command(path), input({}));
    assert.equal(outcome.ok, true);
    assert.equal(outcome.output.length, 1024);
    assert.equal(outcome.truncated, true);
  });

  it("stops a running command on abort", async () => {
    const path = await script("wait.sh", "exec sleep 30");
    const abort = new AbortController();
    const pending = run(command(path), input({}), abort.signal);
    setTimeout(() => abort.abort(), 100);
    const outcome = await pending;
    assert.equal(outcome.ok, false);
    assert.match(outcome.failure!, /shutting down/);
  });

  it("starts nothing once stopped", async () => {
    const marker = join(dir, "started");
    const path = await script("marker.sh", `touch "${marker}"`);
    const abort = new AbortController();
    abort.abort();
    const outcome = await run(command(path), input({}), abort.signal);
    assert.match(outcome.failure!, /shutting down/);
    await assert.rejects(readFile(marker));
  });

  it("a command that ignores its stdin still succeeds", async () => {
    const path = await script("noread.sh", "exit 0");
    const outcome = await run(command(path), input({}, `${"x".repeat(1_000_000)}\n`));
    assert.equal(outcome.ok, true, outcome.failure);
  });
});
