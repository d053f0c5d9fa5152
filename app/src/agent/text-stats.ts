/**
 * The counts of the `text_stats` tool, in time and memory linear in the text.
 *
 * Why not one Intl.Segmenter pass over the whole text: on Node 20 (V8 11) every segment object
 * carries its own copy of the whole input (`segment.input`), so segmenting n characters
 * allocates about n² bytes: 100,000 characters exhausted the heap. The text is segmented in
 * chunks of at most CHUNK characters instead, cut where segmentation does not change: after a
 * line break (which ends sentences and words alike), else after a sentence's end and its spaces,
 * else after whitespace, else (a run of CHUNK characters without one) at a grapheme boundary. A
 * sentence or word that a cut splits in two is counted once.
 */

const CHUNK = 512;
// Written as escapes (。！？‼⁇⁈⁉ and ” ’): one non-ASCII character in a bundle makes V8 hold
// the whole source as UTF-16, twice its size in memory (scripts/build.mjs checks for it).
const TERMINATORS = /[.!?\u3002\uFF01\uFF1F\u203C\u2047\u2048\u2049]["'\u201D\u2019)\]]*$/u;
/** Full-width terminators end a sentence without a space after them. */
const FULL_STOPS = new Set(["\u3002", "\uFF01", "\uFF1F"]);

type Cut = "line" | "sentence" | "space" | "forced" | "end";

interface Piece {
  text: string;
  /** How the piece ends. */
  cut: Cut;
}

const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch);

/** The end of the piece that starts at `from`: a cut within the last half of a full chunk. */
function cutAt(text: string, from: number): { at: number; cut: Cut } {
  const limit = from + CHUNK;
  if (limit >= text.length) return { at: text.length, cut: "end" };
  const floor = from + CHUNK / 2;
  let sentence = -1;
  let space = -1;
  for (let j = limit; j > floor; j--) {
    const before = text[j - 1]!;
    // Never between \r and \n: they are one line break (and one grapheme).
    if (before === "\r" && text[j] === "\n") continue;
    if (before === "\n" || before === "\r") return { at: j, cut: "line" };
    if (sentence < 0 && FULL_STOPS.has(before) && !isSpace(text[j])) sentence = j;
    if (isSpace(before) && !isSpace(text[j])) {
      if (sentence < 0 && TERMINATORS.test(text.slice(Math.max(from, j - 8), j).trimEnd())) {
        // A capital (or anything but a lower-case letter) after ". " starts a sentence for ICU.
        if (!/\p{Ll}/u.test(text[j]!)) sentence = j;
      }
      if (space < 0) space = j;
    }
  }
  if (sentence > 0) return { at: sentence, cut: "sentence" };
  if (space > 0) return { at: space, cut: "space" };
  // No whitespace at all: the grapheme boundary nearest below the limit.
  const lo = Math.max(from + 1, limit - 32);
  const window = text.slice(lo, limit + 32);
  let at = lo;
  for (const g of new Intl.Segmenter("en", { granularity: "grapheme" }).segment(window)) {
    if (lo + g.index > limit) break;
    if (lo + g.index > from) at = lo + g.index;
  }
  return { at, cut: "forced" };
}

function* pieces(text: string): Generator<Piece> {
  for (let from = 0; from < text.length;) {
    const { at, cut } = cutAt(text, from);
    yield { text: text.slice(from, at), cut };
    from = at;
  }
}

export interface SegmentCounts {
  characters: number;
  characters_excluding_whitespace: number;
  words: number;
  sentences: number;
}

export function segmentCounts(text: string): SegmentCounts {
  const graphemes = new Intl.Segmenter("en", { granularity: "grapheme" });
  const wordSeg = new Intl.Segmenter("en", { granularity: "word" });
  const sentenceSeg = new Intl.Segmenter("en", { granularity: "sentence" });
  const out: SegmentCounts = {
    characters: 0,
    characters_excluding_whitespace: 0,
    words: 0,
    sentences: 0,
  };
  let previous: Cut = "line";
  let lastWasWord = false;
  let lastSentenceOpen = false;
  for (const piece of pieces(text)) {
    for (const g of graphemes.segment(piece.text)) {
      out.characters++;
      if (/\S/.test(g.segment)) out.characters_excluding_whitespace++;
    }
    let first = true;
    for (const w of wordSeg.segment(piece.text)) {
      const wordLike = w.isWordLike === true;
      // A word cut in two by a forced cut is one word.
      if (!(first && previous === "forced" && lastWasWord && wordLike) && wordLike) out.words++;
      first = false;
      lastWasWord = wordLike;
    }
    first = true;
    for (const s of sentenceSeg.segment(piece.text)) {
      const blank = s.segment.trim() === "";
      // A sentence the cut split in two (it had not ended where the cut fell) is one sentence.
      const continues =
        first && lastSentenceOpen && (previous === "space" || previous === "forced");
      if (!blank && !continues) out.sentences++;
      first = false;
      if (!blank) lastSentenceOpen = !TERMINATORS.test(s.segment.trimEnd());
    }
    previous = piece.cut;
  }
  return out;
}

/** Paragraphs: runs of lines holding text, separated by lines holding none. */
export function paragraphCount(text: string): number {
  let count = 0;
  let inParagraph = false;
  for (const line of text.split(/\r\n|\r|\n/)) {
    const blank = line.trim() === "";
    if (!blank && !inParagraph) count++;
    inParagraph = !blank;
  }
  return count;
}
