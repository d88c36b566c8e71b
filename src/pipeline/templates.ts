// The recipe templates shipped in recipes/: what `GET /v1/recipes` lists and what a goal-driven
// search tries once its own strategy has nothing left to propose (so its answer is never worse
// than a documented recipe that applies).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RecipeTemplate {
  file: string;
  name: string;
  description?: string;
  /** The file's JSON as written. */
  recipe: unknown;
}

const RECIPES_DIR = fileURLToPath(new URL('../../../recipes/', import.meta.url));

let cached: RecipeTemplate[] | undefined;

/** The templates by file name, read once (none when the folder is missing, as in a trimmed install). */
export function recipeTemplates(): readonly RecipeTemplate[] {
  if (cached) return cached;
  let files: string[] = [];
  try {
    files = readdirSync(RECIPES_DIR).filter((f) => f.endsWith('.json')).sort();
  } catch {
    return (cached = []);
  }
  cached = files.map((file) => {
    const recipe = JSON.parse(readFileSync(join(RECIPES_DIR, file), 'utf8')) as { name?: string; description?: string };
    return { file, name: recipe.name ?? file.replace(/\.json$/, ''), ...(recipe.description ? { description: recipe.description } : {}), recipe };
  });
  return cached;
}
