// Model-wide unique names: the names taken, and the first free one of `base`, `base_1`, `base_2`, …
export class NameTable {
  private readonly used: Set<string>;

  constructor(used: Iterable<string> = []) {
    this.used = new Set(used);
  }

  reserve(name: string): void {
    this.used.add(name);
  }

  release(name: string): void {
    this.used.delete(name);
  }

  /** Takes and returns the first free name for `base`. */
  unique(base: string): string {
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }

  copy(): NameTable {
    return new NameTable(this.used);
  }
}
