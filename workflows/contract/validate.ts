/**
 * The one way a value is checked against a schema, wherever it enters (workflow input,
 * client, command line, environment, etcdctl output, a manifest on disk): the value, or
 * the error the caller makes from a message that names every bad field.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import { FailureType } from './failures.js';

/** One line per problem, each naming the field: `userClusterName: must be a DNS label ...`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(input)'}: ${issue.message}`)
    .join('; ');
}

/** The parsed value, or `fail(message, error)` thrown; the message names each bad field. */
export function parseOrFail<S extends z.ZodType>(
  schema: S,
  value: unknown,
  fail: (issues: string, error: z.ZodError) => Error,
): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw fail(describeIssues(result.error), result.error);
  return result.data;
}

/**
 * A workflow's input, validated first thing. A wrong input is the operator's to fix, not
 * something a retry can cure: it fails non-retryably (InvalidInput), naming each bad field.
 */
export function parseWorkflowInput<S extends z.ZodType>(
  workflowType: string,
  schema: S,
  input: unknown,
): z.output<S> {
  return parseOrFail(schema, input, (issues) =>
    ApplicationFailure.nonRetryable(
      `${workflowType}: invalid input: ${issues}`,
      FailureType.InvalidInput,
    ),
  );
}

/** What is wrong with a value, naming each bad field, or undefined if it is valid (for update validators and signals). */
export function problemWith(schema: z.ZodType, value: unknown): string | undefined {
  const result = schema.safeParse(value);
  return result.success ? undefined : describeIssues(result.error);
}
