// The native tokenizer engine (reference and fallback of fast-bpe.ts): Hugging Face `tokenizers` (Rust) through @anush008/tokenizers.
// Its encode runs as a napi AsyncTask on the libuv thread pool, so long prompts never
// block the event loop; encodeBatch splits a batch across cores with rayon.
import { Tokenizer, templateProcessing } from '@anush008/tokenizers';

/** Ids copied to JS between event-loop turns (~0.5 ms of main-thread work). */
const YIELD_IDS = 4096;

export class HfTokenizerEngine {
  private constructor(private readonly tk: Tokenizer) {}

  /** Load tokenizer.json. Truncation and padding are disabled, as transformers does for a plain call. */
  static fromFile(path: string): HfTokenizerEngine {
    return HfTokenizerEngine.wrap(Tokenizer.fromFile(path));
  }

  static fromString(json: string): HfTokenizerEngine {
    return HfTokenizerEngine.wrap(Tokenizer.fromString(json));
  }

  private static wrap(tk: Tokenizer): HfTokenizerEngine {
    tk.disableTruncation();
    tk.disablePadding();
    return new HfTokenizerEngine(tk);
  }

  /**
   * Replace the post-processor with `[bos] $A [eos]`, as transformers' Llama/Gemma fast
   * tokenizers do from tokenizer_config's add_bos_token / add_eos_token.
   */
  setBosEos(bos: string | null, eos: string | null): void {
    const special: [string, number][] = [];
    for (const t of [bos, eos]) {
      if (t === null) continue;
      const id = this.tk.tokenToId(t);
      if (id === null) throw new Error(`special token ${JSON.stringify(t)} is not in the vocabulary`);
      special.push([t, id]);
    }
    const single = `${bos !== null ? `${bos}:0 ` : ''}$A:0${eos !== null ? ` ${eos}:0` : ''}`;
    const pair = `${single}${bos !== null ? ` ${bos}:1` : ''} $B:1${eos !== null ? ` ${eos}:1` : ''}`;
    this.tk.setPostProcessor(templateProcessing(single, pair, special));
  }

  async encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    const enc = await this.tk.encode(text, null, { addSpecialTokens });
    return enc.getIds();
  }

  /**
   * Encode several independent texts in one native call (parallel across cores). Reading
   * ids back is the only main-thread work (~0.1 us per id), so it yields to the event loop
   * between texts once YIELD_IDS ids have been copied.
   */
  async encodeMany(texts: string[], addSpecialTokens: boolean): Promise<number[][]> {
    if (texts.length === 0) return [];
    if (texts.length === 1) return [await this.encode(texts[0], addSpecialTokens)];
    const encs = await this.tk.encodeBatch(texts, { addSpecialTokens });
    const out: number[][] = [];
    let sinceYield = 0;
    for (const e of encs) {
      if (sinceYield >= YIELD_IDS) {
        await new Promise<void>((r) => setImmediate(r));
        sinceYield = 0;
      }
      const ids = e.getIds();
      sinceYield += ids.length;
      out.push(ids);
    }
    return out;
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
