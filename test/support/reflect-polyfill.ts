/**
 * The part of the Reflect metadata API that `@peculiar/x509`'s dependency `tsyringe` needs
 * (`defineMetadata`, `getOwnMetadata`, `getMetadata`), installed only when absent. tsyringe
 * throws at import time without it, and no polyfill package is installed. Metadata lives in a
 * WeakMap keyed by target, so nothing leaks onto the decorated classes. Import this module
 * before `@peculiar/x509` (see `./x509.ts`); replace with `reflect-metadata` when available.
 */
type Key = string | symbol | undefined;
type MetadataReflect = typeof Reflect & {
  defineMetadata?: (key: unknown, value: unknown, target: object, property?: Key) => void;
  getOwnMetadata?: (key: unknown, target: object, property?: Key) => unknown;
  getMetadata?: (key: unknown, target: object, property?: Key) => unknown;
  hasOwnMetadata?: (key: unknown, target: object, property?: Key) => boolean;
};

const R = Reflect as MetadataReflect;

if (typeof R.getMetadata !== 'function') {
  const store = new WeakMap<object, Map<Key, Map<unknown, unknown>>>();
  const table = (target: object, property: Key, create: boolean): Map<unknown, unknown> | undefined => {
    let byProperty = store.get(target);
    if (!byProperty) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let entries = byProperty.get(property);
    if (!entries && create) {
      entries = new Map();
      byProperty.set(property, entries);
    }
    return entries;
  };
  R.defineMetadata = (key, value, target, property) => {
    table(target, property, true)?.set(key, value);
  };
  R.getOwnMetadata = (key, target, property) => table(target, property, false)?.get(key);
  R.hasOwnMetadata = (key, target, property) => table(target, property, false)?.has(key) ?? false;
  R.getMetadata = (key, target, property) => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const entries = table(t, property, false);
      if (entries?.has(key)) return entries.get(key);
    }
    return undefined;
  };
}

export {};
