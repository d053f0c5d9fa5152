/**
 * A small arithmetic evaluator for the `calculator` tool. It tokenizes and parses the expression
 * itself and only ever computes numbers: there is no eval, no Function, no identifiers and no
 * property access, so nothing a model writes can run as code.
 *
 * Grammar (lowest precedence first):
 *
 *   expression := sum END
 *   sum        := product (("+" | "-") product)*
 *   product    := unary (("*" | "/" | "%") unary)*
 *   unary      := ("+" | "-") unary | power
 *   power      := primary (("^" | "**") unary)?
 *   primary    := NUMBER | "(" sum ")"
 *
 * So `^` binds tighter than unary minus (-2^2 = -4, as in mathematics) and is right-associative
 * (2^3^2 = 2^9); an exponent may carry its own sign (2^-1 = 0.5). `%` is the remainder with the
 * sign of the dividend (-7 % 3 = -1), like most programming languages.
 */

export class CalculatorError extends Error {
  constructor(
    message: string,
    /** Zero-based character offset the error refers to, when there is one. */
    public readonly position?: number,
  ) {
    super(message);
    this.name = "CalculatorError";
  }
}

/** Longest accepted expression; keeps parsing time and recursion trivially bounded. */
export const MAX_EXPRESSION_LENGTH = 2000;
/** Deepest nesting of parentheses and signs; far beyond real arithmetic, far below the JS stack. */
const MAX_DEPTH = 200;

type Operator = "+" | "-" | "*" | "/" | "%" | "^";
type OpToken<O extends Operator = Operator> = { kind: "op"; op: O; pos: number; text: string };
type Token =
  | { kind: "number"; value: number; pos: number; text: string }
  | OpToken
  | { kind: "paren"; open: boolean; pos: number; text: string }
  | { kind: "end"; pos: number; text: string };

/** `t` is one of the operators `ops`. */
function isOp<O extends Operator>(t: Token, ops: readonly O[]): t is OpToken<O> {
  return t.kind === "op" && ops.some((o) => o === t.op);
}

const NUMBER = /(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(source);
    if (m) {
      tokens.push({ kind: "number", value: Number(m[0]), pos: i, text: m[0] });
      i += m[0].length;
      continue;
    }
    if (ch === "*" && source[i + 1] === "*") {
      // Models often write Python's power operator; accept it as a synonym for ^.
      tokens.push({ kind: "op", op: "^", pos: i, text: "**" });
      i += 2;
      continue;
    }
    if (ch === "+" || ch === "-" || ch === "*" || ch === "/" || ch === "%" || ch === "^") {
      tokens.push({ kind: "op", op: ch, pos: i, text: ch });
      i++;
      continue;
    }
    if (ch === "(" || ch === ")") {
      tokens.push({ kind: "paren", open: ch === "(", pos: i, text: ch });
      i++;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i))?.[0];
    throw new CalculatorError(
      `unexpected ${word ? `name "${word}"` : `character "${ch}"`} at position ${i + 1}: ` +
        "only numbers, + - * / % ^ and parentheses are allowed (no functions or variables)",
      i,
    );
  }
  tokens.push({ kind: "end", pos: source.length, text: "end of expression" });
  return tokens;
}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(private readonly tokens: Token[]) {}

  parse(): number {
    const value = this.sum();
    const t = this.peek();
    if (t.kind !== "end") {
      const hint =
        t.kind === "number" || (t.kind === "paren" && t.open)
          ? " (write * for multiplication)"
          : "";
      throw new CalculatorError(`unexpected "${t.text}" at position ${t.pos + 1}${hint}`, t.pos);
    }
    return value;
  }

  private peek(): Token {
    // The tokenizer always ends with an "end" token, and nothing advances past it.
    return this.tokens[this.i]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== "end") this.i++;
    return t;
  }

  /** The next token when it is one of the operators `ops` (consumed), else undefined. */
  private takeOp<O extends Operator>(...ops: O[]): OpToken<O> | undefined {
    const t = this.peek();
    if (!isOp(t, ops)) return undefined;
    this.i++;
    return t;
  }

  private enter(pos: number) {
    if (++this.depth > MAX_DEPTH)
      throw new CalculatorError(
        `expression is nested too deeply (more than ${MAX_DEPTH} levels)`,
        pos,
      );
  }

  private sum(): number {
    let left = this.product();
    for (let op = this.takeOp("+", "-"); op; op = this.takeOp("+", "-")) {
      const right = this.product();
      left = checked(op.op === "+" ? left + right : left - right, op);
    }
    return left;
  }

  private product(): number {
    let left = this.unary();
    for (let op = this.takeOp("*", "/", "%"); op; op = this.takeOp("*", "/", "%")) {
      const right = this.unary();
      if ((op.op === "/" || op.op === "%") && right === 0) {
        throw new CalculatorError(
          `${op.op === "/" ? "division" : "remainder"} by zero at position ${op.pos + 1}`,
          op.pos,
        );
      }
      left = checked(
        op.op === "*" ? left * right : op.op === "/" ? left / right : left % right,
        op,
      );
    }
    return left;
  }

  private unary(): number {
    const op = this.takeOp("+", "-");
    if (op) {
      this.enter(op.pos);
      const value = this.unary();
      this.depth--;
      return op.op === "-" ? -value : value;
    }
    return this.power();
  }

  private power(): number {
    const base = this.primary();
    const op = this.takeOp("^");
    if (!op) return base;
    this.enter(op.pos);
    // unary, not primary: the exponent may be signed, and recursing through unary -> power
    // makes a chain of ^ associate to the right.
    const exponent = this.unary();
    this.depth--;
    if (base === 0 && exponent < 0)
      throw new CalculatorError(
        `0 raised to a negative power at position ${op.pos + 1} is undefined`,
        op.pos,
      );
    const value = base ** exponent;
    if (Number.isNaN(value)) {
      throw new CalculatorError(
        `${formatNumber(base)}^${formatNumber(exponent)} at position ${op.pos + 1} has no real result (negative base with a fractional exponent)`,
        op.pos,
      );
    }
    return checked(value, op);
  }

  private primary(): number {
    const t = this.next();
    if (t.kind === "number") {
      if (!Number.isFinite(t.value))
        throw new CalculatorError(
          `number "${t.text}" at position ${t.pos + 1} is too large`,
          t.pos,
        );
      return t.value;
    }
    if (t.kind === "paren" && t.open) {
      this.enter(t.pos);
      const value = this.sum();
      this.depth--;
      const close = this.next();
      if (close.kind !== "paren" || close.open) {
        throw new CalculatorError(
          `expected ")" to close the "(" at position ${t.pos + 1}, found ${close.kind === "end" ? "the end of the expression" : `"${close.text}" at position ${close.pos + 1}`}`,
          close.pos,
        );
      }
      return value;
    }
    if (t.kind === "end")
      throw new CalculatorError('expression ends where a number or "(" was expected', t.pos);
    throw new CalculatorError(
      `expected a number or "(" at position ${t.pos + 1}, found "${t.text}"`,
      t.pos,
    );
  }
}

function checked(value: number, op: { pos: number; text: string }): number {
  if (!Number.isFinite(value)) {
    throw new CalculatorError(
      `result of "${op.text}" at position ${op.pos + 1} is too large to represent (overflow)`,
      op.pos,
    );
  }
  return value;
}

/** Evaluate an arithmetic expression; throws CalculatorError with a message a model can act on. */
export function evaluateExpression(source: string): number {
  if (source.length > MAX_EXPRESSION_LENGTH) {
    throw new CalculatorError(`expression is longer than ${MAX_EXPRESSION_LENGTH} characters`);
  }
  if (source.trim() === "") throw new CalculatorError("expression is empty");
  return new Parser(tokenize(source)).parse();
}

/**
 * Print a result without binary floating-point noise (0.1 + 0.2 gives "0.3"): 15 significant
 * digits is what a double represents exactly, so rounding there hides only the noise.
 */
export function formatNumber(n: number): string {
  const rounded = Number(n.toPrecision(15));
  return Object.is(rounded, -0) ? "0" : String(rounded);
}
