/** Paths of the external tools, as scripts/provision.sh found them (.tools.json). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const toolsSchema = z.object({
  temporal: z.string(),
  temporalVersion: z.string(),
  etcd: z.string(),
  etcdctl: z.string(),
  bwrap: z.string(),
});
export type Tools = z.infer<typeof toolsSchema>;

const TOOLS_FILE = fileURLToPath(new URL('../../.tools.json', import.meta.url));
let tools: Tools | undefined;

export function readTools(): Tools {
  if (!tools) {
    let text: string;
    try {
      text = readFileSync(TOOLS_FILE, 'utf8');
    } catch {
      throw new Error(
        `${TOOLS_FILE} is missing: run 'npm run provision' (npm test runs it first).`,
      );
    }
    tools = toolsSchema.parse(JSON.parse(text));
  }
  return tools;
}
