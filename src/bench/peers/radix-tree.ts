// A multi-tenant approximate radix tree, re-implemented from the published description of the
// SGLang router's `cache_aware` policy (shared/reference/peers-and-benchmarks.md §3): one tree
// per model over request tokens (or characters), every node remembering which tenants (workers)
// were sent that prefix and when; LRU leaf eviction per tenant down to a size budget.
// It learns only from routing decisions; it never sees the engine's evictions.

export type Seq = Uint32Array;

class Node {
  children = new Map<number, Node>();
  /** tenant -> last access time (ms) */
  tenants = new Map<string, number>();
  constructor(
    public edge: Seq,
    public parent: Node | null,
  ) {}
}

function commonPrefix(a: Seq, aFrom: number, b: Seq): number {
  const n = Math.min(a.length - aFrom, b.length);
  let i = 0;
  while (i < n && a[aFrom + i] === b[i]) i++;
  return i;
}

export interface TreeMatch {
  /** Elements matched for the best tenant. */
  matched: number;
  /** The tenant with the longest match among those allowed (undefined when nothing matched). */
  tenant?: string;
  /** Longest match per tenant (only tenants with a match > 0). */
  perTenant: Map<string, number>;
}

export class TenantRadixTree {
  private root = new Node(new Uint32Array(0), null);
  /** Elements held per tenant (sum of edge lengths of nodes it is on). */
  private sizes = new Map<string, number>();

  tenantSize(tenant: string): number {
    return this.sizes.get(tenant) ?? 0;
  }

  insert(seq: Seq, tenant: string, now = Date.now()): void {
    let node = this.root;
    node.tenants.set(tenant, now);
    let i = 0;
    while (i < seq.length) {
      const child = node.children.get(seq[i]);
      if (!child) {
        const leaf = new Node(seq.slice(i), node);
        leaf.tenants.set(tenant, now);
        node.children.set(seq[i], leaf);
        this.grow(tenant, leaf.edge.length);
        return;
      }
      const k = commonPrefix(seq, i, child.edge);
      if (k < child.edge.length) this.split(child, k);
      const next = node.children.get(seq[i])!;
      if (!next.tenants.has(tenant)) this.grow(tenant, next.edge.length);
      next.tenants.set(tenant, now);
      node = next;
      i += k;
    }
  }

  /** Split `child` after its first `k` elements; returns the new upper node. */
  private split(child: Node, k: number): Node {
    const parent = child.parent!;
    const upper = new Node(child.edge.slice(0, k), parent);
    upper.tenants = new Map(child.tenants);
    child.edge = child.edge.slice(k);
    child.parent = upper;
    upper.children.set(child.edge[0], child);
    parent.children.set(upper.edge[0], upper);
    return upper;
  }

  private grow(tenant: string, n: number): void {
    this.sizes.set(tenant, (this.sizes.get(tenant) ?? 0) + n);
  }

  /**
   * Longest prefix of `seq` each tenant holds; ties between tenants with the same (longest)
   * match are left to the caller via `perTenant`. `allowed` restricts the tenants considered.
   */
  match(seq: Seq, allowed?: ReadonlySet<string>, now = Date.now()): TreeMatch {
    const perTenant = new Map<string, number>();
    let node = this.root;
    let i = 0;
    while (i < seq.length) {
      const child = node.children.get(seq[i]);
      if (!child) break;
      const k = commonPrefix(seq, i, child.edge);
      i += k;
      for (const t of child.tenants.keys()) {
        if (!allowed || allowed.has(t)) {
          perTenant.set(t, i);
          child.tenants.set(t, now); // a match is an access (SGLang refreshes timestamps on match)
        }
      }
      if (k < child.edge.length) break;
      node = child;
    }
    let best: string | undefined;
    let matched = 0;
    for (const [t, n] of perTenant) {
      if (n > matched) {
        matched = n;
        best = t;
      }
    }
    return { matched, tenant: best, perTenant };
  }

  /** Evict least-recently-used leaves of every tenant above `maxSize` elements. */
  evict(maxSize: number): number {
    let removed = 0;
    for (const [tenant, size] of this.sizes) {
      if (size <= maxSize) continue;
      // Tenant leaves: nodes holding the tenant where no child holds it.
      const leaves: Node[] = [];
      const walk = (n: Node) => {
        let childHas = false;
        for (const c of n.children.values()) {
          if (c.tenants.has(tenant)) {
            childHas = true;
            walk(c);
          }
        }
        if (!childHas && n !== this.root && n.tenants.has(tenant)) leaves.push(n);
      };
      walk(this.root);
      const byAge = (a: Node, b: Node) => a.tenants.get(tenant)! - b.tenants.get(tenant)!;
      leaves.sort(byAge);
      let cur = size;
      while (cur > maxSize && leaves.length > 0) {
        const leaf = leaves.shift()!;
        leaf.tenants.delete(tenant);
        cur -= leaf.edge.length;
        removed += leaf.edge.length;
        const parent = leaf.parent!;
        if (leaf.tenants.size === 0 && leaf.children.size === 0) parent.children.delete(leaf.edge[0]);
        if (parent !== this.root && parent.tenants.has(tenant) && ![...parent.children.values()].some((c) => c.tenants.has(tenant))) {
          // The parent became this tenant's leaf: keep it ordered by age.
          const at = leaves.findIndex((l) => byAge(parent, l) < 0);
          leaves.splice(at < 0 ? leaves.length : at, 0, parent);
        }
      }
      this.sizes.set(tenant, cur);
    }
    return removed;
  }

  /** Drop a tenant everywhere (worker removed). */
  removeTenant(tenant: string): void {
    const walk = (n: Node) => {
      n.tenants.delete(tenant);
      for (const [k, c] of n.children) {
        walk(c);
        if (c.tenants.size === 0 && c.children.size === 0) n.children.delete(k);
      }
    };
    walk(this.root);
    this.sizes.delete(tenant);
  }
}

/** Request text as a sequence of UTF-16 code units (SGLang's HTTP mode matches characters). */
export function charSeq(text: string): Seq {
  const out = new Uint32Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
