/**
 * An extension command line, run without a shell as flannel does since March 2026 (against injection
 * through lease data): the configured text is split into words on whitespace, and $NAME / ${NAME} in a
 * word are replaced by the variable's value. A word stays exactly one argument whatever its value holds
 * (spaces, `;`, `$(...)`, quotes), because values are never parsed again.
 *
 * flanneld v0.20.2 ran the same text through `sh -c`. A command written for that (`;`, `|`, `&&`,
 * `$(...)`, quotes, redirections...) would now run as literal words and do something else, perhaps
 * something harmful (`rm -f a; b` removes "a;" and "b"). So such a command is refused as a config error
 * naming the key, before anything runs; the operator moves the shell part into a script.
 * Pure: parsing is done once per config, expansion once per run.
 */

/** One argument to be: literal text and variable references, joined. */
export type WordPart = { readonly literal: string } | { readonly variable: string };

export interface CommandLine {
  /** The text as configured, for log lines. */
  readonly text: string;
  /** The first word is the program. Never empty. */
  readonly words: readonly (readonly WordPart[])[];
}

export type ParseResult =
  | { readonly ok: true; readonly command: CommandLine }
  | { readonly ok: false; readonly problem: string };

// Go's unicode.IsSpace, which strings.Fields and strings.TrimSpace use.
const SPACE = "\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
const SPACES = new RegExp(`[${SPACE}]+`, "u");
const LEADING_OR_TRAILING_SPACE = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "gu");

/** Go's strings.TrimSpace (JavaScript's trim() also removes U+FEFF and keeps U+0085). */
export function trimSpace(text: string): string {
  return text.replace(LEADING_OR_TRAILING_SPACE, "");
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;
const BRACED_NAME = /^\{([A-Za-z_][A-Za-z0-9_]*)\}/;

/** Characters that mean something to sh wherever they stand, with what they are. */
const SHELL_CHARACTERS: ReadonlyMap<string, string> = new Map([
  [";", "a command separator"],
  ["\n", "a line break (a command separator)"],
  ["|", "a pipe"],
  ["&", "&& or a background job"],
  ["<", "a redirection"],
  [">", "a redirection"],
  ["(", "a subshell"],
  [")", "a subshell"],
  ["`", "a command substitution"],
  ["'", "quotes"],
  ['"', "quotes"],
  ["\\", "a backslash escape"],
  ["*", "a glob pattern"],
  ["?", "a glob pattern"],
  ["[", "a glob pattern"],
]);

/** Shell built-ins and keywords that have no program of their own to run. */
const SHELL_WORDS = new Set([
  "!",
  ".",
  "{",
  "}",
  "alias",
  "case",
  "cd",
  "do",
  "done",
  "eval",
  "exec",
  "exit",
  "export",
  "for",
  "if",
  "local",
  "read",
  "return",
  "set",
  "shift",
  "source",
  "then",
  "trap",
  "unset",
  "until",
  "while",
]);

/** JSON quoting (which escapes C0, quotes and backslashes), cut to 24 characters, DEL, C1 and U+2028/9 escaped too. */
function quote(text: string): string {
  const cut = text.length > 24 ? `${text.slice(0, 24)}…` : text;
  return JSON.stringify(cut).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Parses a configured command; says what shell syntax it uses when it cannot run without a shell. */
export function parseCommandLine(text: string): ParseResult {
  // A Set and a bounded quote: a 1 MB command of distinct "#1 #2 ..." words was quadratic here, and each
  // word went whole into the message.
  const found = new Set<string>();
  const note = (what: string, at: string) => {
    found.add(`${what} (${quote(at)})`);
  };
  for (const char of text) {
    const what = SHELL_CHARACTERS.get(char);
    if (what) note(what, char);
  }
  const rawWords = trimSpace(text)
    .split(SPACES)
    .filter((w) => w !== "");
  if (rawWords.length === 0) return { ok: false, problem: "is blank; name a program to run" };

  const words: WordPart[][] = [];
  let inAssignments = true;
  for (const [index, raw] of rawWords.entries()) {
    if (index === 0 && SHELL_WORDS.has(raw)) note("a shell built-in", raw);
    if (raw.startsWith("#")) note("a comment", raw);
    if (raw.startsWith("~")) note("a home directory (~)", raw);
    if (inAssignments && /^[A-Za-z_][A-Za-z0-9_]*=/.test(raw)) note("a variable assignment", raw);
    else inAssignments = false;
    words.push(parseWord(raw, note));
  }
  if (found.size > 0)
    return { ok: false, problem: `uses shell syntax: ${[...found].slice(0, 3).join(", ")}` };
  return { ok: true, command: { text, words } };
}

function parseWord(raw: string, note: (what: string, at: string) => void): WordPart[] {
  const parts: WordPart[] = [];
  let literal = "";
  let i = 0;
  while (i < raw.length) {
    const dollar = raw.indexOf("$", i);
    if (dollar < 0) {
      literal += raw.slice(i);
      break;
    }
    literal += raw.slice(i, dollar);
    const rest = raw.slice(dollar + 1);
    const braced = BRACED_NAME.exec(rest);
    const plain = braced ? null : NAME.exec(rest);
    if (braced || plain) {
      if (literal !== "") parts.push({ literal });
      literal = "";
      parts.push({ variable: braced ? braced[1]! : plain![0] });
      i = dollar + 1 + (braced ? braced[0].length : plain![0].length);
      continue;
    }
    const next = rest.charAt(0);
    if (next === "(") note("a command substitution", "$(");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: sh's ${NAME}, not a template
    else if (next === "{") note("a parameter expansion other than ${NAME}", `$${rest.slice(0, 20)}`);
    else if (/^[0-9*#$@!?-]/.test(next)) note("a special parameter", `$${next}`);
    // Anything else ("$", "$/", "$.") is a plain dollar to sh too.
    literal += "$";
    i = dollar + 1;
  }
  if (literal !== "" || parts.length === 0) parts.push({ literal });
  return parts;
}

/**
 * The program and arguments for one run. `lookup` gives a variable's value (undefined: empty, as in
 * sh and Go's os.Expand). Every word becomes exactly one argument, an empty one included.
 */
export function expandCommandLine(
  command: CommandLine,
  lookup: (name: string) => string | undefined,
): { program: string; args: string[] } {
  const expanded = command.words.map((parts) =>
    parts.map((part) => ("literal" in part ? part.literal : (lookup(part.variable) ?? ""))).join(""),
  );
  return { program: expanded[0]!, args: expanded.slice(1) };
}
