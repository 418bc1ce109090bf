#!/usr/bin/env node
/**
 * The weft command for operators: `weft leases` and `weft doctor`. Both take weftd's flags and FLANNELD_*
 * variables (so they read the store and choose the interface exactly as weftd does) plus their own
 * options; operator errors print one line, never a stack trace.
 */
import { parseFlags, usage } from "../daemon/flags.js";
import { describeError, UserError } from "../user-error.js";
import { splitCommandOptions } from "./command-options.js";

const HELP = `Usage: weft COMMAND [OPTION]... [WEFTD FLAG]...

Commands:
  leases   list the cluster's subnet leases (etcd, or the Kubernetes API with --kube-subnet-mgr)
           --output table|json   (default table)
           --svg FILE            also draw the network's address space as an SVG picture
  doctor   check this host's datapath against what weftd wants; exit status 1 if anything is wrong
           --output table|json   (default table)

weftd's flags and FLANNELD_* variables select the store, the interface and the rules, as for weftd:
`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  const write = (text: string) => process.stdout.write(text);
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    write(HELP + usage("weft leases|doctor").split("\n").slice(1).join("\n"));
    return command === undefined ? 2 : 0;
  }
  if (command !== "leases" && command !== "doctor") {
    throw new UserError(
      `unknown command ${JSON.stringify(command)}`,
      "use weft leases or weft doctor (weft --help)",
    );
  }
  const { options, daemonArgs } = splitCommandOptions(
    rest,
    command === "leases" ? ["output", "svg"] : ["output"],
  );
  const flags = parseFlags(daemonArgs, process.env);
  if (flags.rest.length > 0)
    throw new UserError(`unexpected arguments: ${flags.rest.join(" ")}`, "see weft --help");
  const output = options.get("output") ?? "table";
  if (output !== "table" && output !== "json") {
    throw new UserError(`--output ${JSON.stringify(output)} is not table or json`);
  }
  if (command === "leases") {
    const { readLeases } = await import("./lease-source.js");
    const { leasesCommand } = await import("./leases-command.js");
    return leasesCommand(
      await readLeases(flags, process.env),
      { output, svgFile: options.get("svg") },
      write,
    );
  }
  const { doctorCommand } = await import("./doctor-command.js");
  return doctorCommand(flags, process.env, output, write);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`weft: ${describeError(err)}\n`);
    process.exitCode = 2;
  },
);
