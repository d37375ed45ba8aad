// Output text for simulated tokens: random mode maps each token id to a word so text and
// token counts agree; echo mode replays the prompt's words (or its token ids' words).
const WORDS = (
  'the of and to in is was that for it with as on be at by this had not are but from or have an they which one you were all ' +
  'her she there would their we him been has when who will no more if out so said what up its about than into them can only ' +
  'other time new some could these two may first then do any like my now over such our man me even most made after also did ' +
  'many before must through back years where much your way well down should because each just those people how too little state ' +
  'good very make world still own see men work long get here between both life being under never day same another know while last'
).split(' ');

export function wordFor(tokenId: number): string {
  return WORDS[tokenId % WORDS.length];
}

/** Text of output tokens [from, to) of a request whose output starts at tokens[base]. */
export function outputText(tokens: ArrayLike<number>, base: number, from: number, to: number, echoWords: string[] | null): string {
  let s = '';
  for (let i = from; i < to; i++) {
    const w = echoWords !== null && echoWords.length > 0 ? echoWords[i % echoWords.length] : wordFor(tokens[base + i]);
    s += i === 0 ? w : ` ${w}`;
  }
  return s;
}
