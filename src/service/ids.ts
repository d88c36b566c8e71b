// Ids are Postgres uuids. ajv's `format: uuid` also accepts `urn:uuid:` forms Postgres refuses, and a
// loose pattern let 36 dashes through to a 500: one strict pattern for every route and check.
export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const UUID_RE = new RegExp(UUID_PATTERN);
export const IdParams = { type: 'object', properties: { id: { type: 'string', pattern: UUID_PATTERN } }, required: ['id'] } as const;
