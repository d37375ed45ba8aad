// Finds added tokens (special tokens like <|im_start|>, and others like <think>) in a text
// the way HF tokenizers' AddedVocabulary does: leftmost-longest matches, scanning left to
// right; the text between matches goes through normalizer, pre-tokenizer and model.
export interface AddedTokenMatch {
  start: number;
  end: number;
  id: number;
}

export class AddedTokenMatcher {
  /** Candidates by first UTF-16 unit, longest first (the longest wins at one start). */
  private readonly byFirst = new Map<number, { content: string; id: number }[]>();
  private readonly first = new Uint8Array(65536);
  readonly size: number;

  constructor(tokens: { content: string; id: number }[]) {
    // A later duplicate of the same content overrides the earlier one, as in a map.
    const unique = new Map<string, number>();
    for (const t of tokens) if (t.content.length > 0) unique.set(t.content, t.id);
    for (const [content, id] of unique) {
      const c = content.charCodeAt(0);
      this.first[c] = 1;
      let list = this.byFirst.get(c);
      if (!list) this.byFirst.set(c, (list = []));
      list.push({ content, id });
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.content.length - a.content.length);
    this.size = unique.size;
  }

  /** The leftmost-longest match in s[from, to), or null. */
  next(s: string, from: number, to: number, out: AddedTokenMatch): boolean {
    if (this.size === 0) return false;
    const first = this.first;
    for (let i = from; i < to; i++) {
      const c = s.charCodeAt(i);
      if (first[c] === 0) continue;
      for (const t of this.byFirst.get(c)!) {
        if (i + t.content.length <= to && s.startsWith(t.content, i)) {
          out.start = i;
          out.end = i + t.content.length;
          out.id = t.id;
          return true;
        }
      }
    }
    return false;
  }
}
