/**
 * The contract between workflows, activities, the worker and the client: schemas of every
 * input and output, failure types, derived names and id rules, search attributes, and the
 * types that cross the activity boundary. Pure, so it is bundled into workflow code;
 * activities import nothing else from workflows/.
 */
export * from './activity-types.js';
export * from './etcd-versions.js';
export * from './failures.js';
export * from './metrics.js';
export * from './names.js';
export * from './requirements.js';
export * from './schemas.js';
export * from './search-attributes.js';
export * from './validate.js';
