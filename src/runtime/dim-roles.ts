// What a dynamic dimension's name says it is, and the size synthetic inputs give it first. The one
// table of the rule documented in README ("Inputs for dynamic dimensions"); probing other sizes
// when the first choice does not run is src/runtime/input-shapes.ts.

export type DimRole = 'batch' | 'length' | 'spatial' | 'other';

/** dim_param patterns by role, with the role's first size (batch: the batch size asked for, 1 by default). */
export const DIM_ROLES: readonly { role: Exclude<DimRole, 'other'>; pattern: RegExp; size: number }[] = [
  { role: 'batch', pattern: /^(n|b|bs|batch|batch_?size|num_?batch(es)?|.*_batch|batch_.*)$/i, size: 1 },
  { role: 'length', pattern: /seq|time|length|^len|_len$|token|sample|frame|step|^t$|^l$|^s$/i, size: 128 },
  { role: 'spatial', pattern: /height|width|^h$|^w$|^img_?[hw]$/i, size: 224 },
];

/** First size of open dims whose name says nothing (or that have no name), except axis 0. */
export const OTHER_DIM_SIZE = 32;

/** The role of a dimension: by its name; an unnamed (or unrecognised) axis 0 is the batch. */
export function dimRole(name: string | undefined, axis: number): DimRole {
  const hit = name ? DIM_ROLES.find((r) => r.pattern.test(name)) : undefined;
  if (hit) return hit.role;
  return axis === 0 ? 'batch' : 'other';
}

/** The first size of a non-batch role. */
export function firstSize(role: Exclude<DimRole, 'batch'>, other = OTHER_DIM_SIZE): number {
  return role === 'other' ? other : DIM_ROLES.find((r) => r.role === role)!.size;
}
