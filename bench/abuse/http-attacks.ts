// HTTP attacks for `npm run bench:abuse` (see types.ts).
import type { Attack } from './types.js';

export const httpAttacks: Attack[] = [];
