// Recipes for people writing them: the templates in recipes/ and a validation that is exactly the
// one POST /v1/jobs applies (parseRecipe), with each problem at its JSON path and each step's data
// needs, so an editor can check a recipe as it is typed. Public: nothing here is the owner's.
import type { FastifyInstance } from 'fastify';
import { InvalidRecipeError } from '../../errors.js';
import { PASSES } from '../../passes/index.js';
import { parseRecipe } from '../../pipeline/recipe.js';
import { needsLabels } from '../../pipeline/goal.js';
import { recipeTemplates } from '../../pipeline/templates.js';

const Validation = {
  type: 'object',
  properties: {
    valid: { type: 'boolean' },
    problems: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
    steps: { type: 'array', items: { type: 'object', properties: { pass: { type: 'string' }, calibration: { type: 'string', enum: ['required', 'used', 'none'] } } } },
    goal: { type: 'boolean', description: 'The recipe states a goal: it needs evaluation data (and labels for a task metric).' },
    needsLabels: { type: 'boolean' },
  },
} as const;

export default async function recipeRoutes(app: FastifyInstance) {
  const list = { items: recipeTemplates() };
  app.get('/recipes', { schema: { summary: 'Recipe templates (the files in recipes/)', tags: ['recipes'], response: { 200: { type: 'object', properties: { items: { type: 'array', items: { type: 'object', additionalProperties: true } } } } } } }, async () => list);
  app.post(
    '/recipes/validate',
    {
      schema: {
        summary: 'Check a recipe as POST /v1/jobs would: problems at their JSON paths, and what data each step needs',
        tags: ['recipes'],
        body: { type: 'object', required: ['recipe'], properties: { recipe: { anyOf: [{ type: 'object' }, { type: 'string' }] } } },
        response: { 200: Validation, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req) => {
      try {
        const recipe = parseRecipe((req.body as { recipe: unknown }).recipe);
        return {
          valid: true,
          problems: [],
          steps: recipe.steps.map((s) => ({ pass: s.pass, calibration: PASSES[s.pass]!.calibration?.(s as never) ?? 'none' })),
          goal: recipe.goal !== undefined,
          needsLabels: recipe.goal !== undefined && needsLabels(recipe.goal.metric),
        };
      } catch (err) {
        if (err instanceof InvalidRecipeError) return { valid: false, problems: err.problems, steps: [], goal: false, needsLabels: false };
        throw err;
      }
    },
  );
}
