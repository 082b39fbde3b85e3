/** Turns raw workflow input into validated parameters, or fails the workflow for good. */
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import { describeIssues } from './schemas.js';

/** Failure types a caller can match on (`ApplicationFailure.type`). */
export const FailureType = {
  InvalidInput: 'InvalidInput',
} as const;

/**
 * Validates `input` against `schema`. A wrong input is the operator's to fix, not
 * something a retry can cure: it fails non-retryably, naming each bad field.
 */
export function parseInput<S extends z.ZodType>(
  workflowType: string,
  schema: S,
  input: unknown,
): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw ApplicationFailure.nonRetryable(
      `${workflowType}: invalid input: ${describeIssues(result.error)}`,
      FailureType.InvalidInput,
    );
  }
  return result.data;
}
