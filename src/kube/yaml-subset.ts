/**
 * The part of YAML that kubeconfig files use: block mappings and sequences (including "- key: value"
 * items), plain, single- and double-quoted scalars, comments, and empty flow collections ({} and []).
 * JSON is tried first, since a kubeconfig may be JSON. Anything else is a YamlError naming the line.
 */
import { boundText } from "../text/untrusted-text.js";

export class YamlError extends Error {}

type Value = null | string | Value[] | { [key: string]: Value };

interface Line {
  readonly indent: number;
  readonly text: string;
  readonly number: number;
}

export function parseYamlSubset(source: string): unknown {
  const trimmed = source.trim();
  if (trimmed.startsWith("{")) {
    try {
      return JSON.parse(trimmed);
    } catch {
      // not JSON after all: fall through to YAML
    }
  }
  const lines: Line[] = [];
  source.split(/\r?\n/).forEach((raw, i) => {
    const text = stripComment(raw).trimEnd();
    if (text.trim() === "" || text.trim() === "---") return;
    if (/^\t/.test(raw)) throw new YamlError(`line ${i + 1}: tabs are not allowed for indentation`);
    lines.push({ indent: text.length - text.trimStart().length, text: text.trimStart(), number: i + 1 });
  });
  if (lines.length === 0) return null;
  const parser = new BlockParser(lines);
  const value = parser.parseBlock(lines[0]!.indent);
  if (parser.position < lines.length)
    throw new YamlError(`line ${lines[parser.position]!.number}: unexpected indentation`);
  return value;
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** Far deeper than any kubeconfig, far shallower than the stack: deeper is refused, not a RangeError. */
const MAX_DEPTH = 100;

class BlockParser {
  position = 0;
  private depth = 0;
  constructor(private readonly lines: Line[]) {}

  /** Runs one level of nesting, refusing to go deeper than MAX_DEPTH. */
  private level<T>(line: Line, parse: () => T): T {
    if (++this.depth > MAX_DEPTH) {
      throw new YamlError(`line ${line.number}: nested deeper than ${MAX_DEPTH} levels`);
    }
    try {
      return parse();
    } finally {
      this.depth--;
    }
  }

  parseBlock(indent: number): Value {
    const line = this.lines[this.position]!;
    return this.level(line, () =>
      line.text.startsWith("- ") || line.text === "-"
        ? this.parseSequence(indent)
        : this.parseMapping(indent),
    );
  }

  private parseSequence(indent: number): Value[] {
    const items: Value[] = [];
    while (this.position < this.lines.length) {
      const line = this.lines[this.position]!;
      if (line.indent < indent) break;
      const isItem = line.text.startsWith("- ") || line.text === "-";
      // A sequence written at its key's indentation ends at the next key.
      if (line.indent === indent && !isItem) break;
      if (line.indent > indent) throw new YamlError(`line ${line.number}: expected a "- " item`);
      const rest = line.text.slice(1).trimStart();
      if (rest === "") {
        this.position++;
        items.push(this.nested(indent));
      } else if (isMappingEntry(rest)) {
        // "- key: value": the item is a mapping whose keys sit at the column after "- ".
        const column = indent + (line.text.length - rest.length);
        this.lines[this.position] = { indent: column, text: rest, number: line.number };
        items.push(this.level(line, () => this.parseMapping(column)));
      } else {
        this.position++;
        items.push(scalar(rest, line.number));
      }
    }
    return items;
  }

  private parseMapping(indent: number): { [key: string]: Value } {
    const map: { [key: string]: Value } = {};
    while (this.position < this.lines.length) {
      const line = this.lines[this.position]!;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new YamlError(`line ${line.number}: unexpected indentation`);
      if (line.text.startsWith("- ")) break;
      const entry = splitEntry(line.text);
      if (!entry) throw new YamlError(`line ${line.number}: expected "key: value"`);
      this.position++;
      const key = String(scalar(entry.key, line.number) ?? "");
      if (entry.value !== "") map[key] = scalar(entry.value, line.number);
      else {
        // A sequence may sit at the same indentation as its key.
        const next = this.lines[this.position];
        map[key] =
          next && next.indent === indent && next.text.startsWith("- ")
            ? this.parseSequence(indent)
            : this.nested(indent);
      }
    }
    return map;
  }

  private nested(parentIndent: number): Value {
    const next = this.lines[this.position];
    if (!next || next.indent <= parentIndent) return null;
    return this.parseBlock(next.indent);
  }
}

function isMappingEntry(text: string): boolean {
  return splitEntry(text) !== undefined;
}

function splitEntry(text: string): { key: string; value: string } | undefined {
  const quoted = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s+(.*)|$)/.exec(text);
  if (quoted) return { key: quoted[1]!, value: (quoted[2] ?? "").trim() };
  const match = /^([^:]+?)\s*:(?:\s+(.*)|$)/.exec(text);
  if (!match || match[1]!.startsWith("{") || match[1]!.startsWith("[")) return undefined;
  return { key: match[1]!, value: (match[2] ?? "").trim() };
}

function scalar(text: string, lineNumber: number): Value {
  if (text.startsWith('"')) {
    try {
      return JSON.parse(text) as string;
    } catch {
      throw new YamlError(`line ${lineNumber}: bad double-quoted string`);
    }
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2)
      throw new YamlError(`line ${lineNumber}: bad single-quoted string`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (text === "{}") return {};
  if (text === "[]") return [];
  if (text === "~" || text === "null" || text === "Null" || text === "NULL") return null;
  if (
    text.startsWith("{") ||
    text.startsWith("[") ||
    text.startsWith("|") ||
    text.startsWith(">") ||
    text.startsWith("&") ||
    text.startsWith("*")
  )
    throw new YamlError(
      `line ${lineNumber}: this YAML form is not supported in a kubeconfig here (${boundText(text, 20)})`,
    );
  return text;
}
