// The tokenizer engine: Hugging Face `tokenizers` (Rust) through @anush008/tokenizers.
// Its encode runs as a napi AsyncTask on the libuv thread pool, so long prompts never
// block the event loop; encodeBatch splits a batch across cores with rayon.
import { Tokenizer } from '@anush008/tokenizers';

export class HfTokenizerEngine {
  private constructor(private readonly tk: Tokenizer) {}

  /** Load tokenizer.json. Truncation and padding are disabled, as transformers does for a plain call. */
  static fromFile(path: string): HfTokenizerEngine {
    const tk = Tokenizer.fromFile(path);
    tk.disableTruncation();
    tk.disablePadding();
    return new HfTokenizerEngine(tk);
  }

  async encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    const enc = await this.tk.encode(text, null, { addSpecialTokens });
    return enc.getIds();
  }

  /** Encode several independent texts in one native call (parallel across cores). */
  async encodeMany(texts: string[], addSpecialTokens: boolean): Promise<number[][]> {
    if (texts.length === 0) return [];
    if (texts.length === 1) return [await this.encode(texts[0], addSpecialTokens)];
    const encs = await this.tk.encodeBatch(texts, { addSpecialTokens });
    return encs.map((e) => e.getIds());
  }

  async decode(ids: number[], skipSpecialTokens = false): Promise<string> {
    return this.tk.decode(ids, skipSpecialTokens);
  }

  vocabSize(): number {
    return this.tk.getVocabSize(true);
  }

  idToToken(id: number): string | null {
    return this.tk.idToToken(id);
  }
}
