#!/usr/bin/env node
/** The installed command `etcd-ha-restore` (package.json `bin`, built to dist/client/bin.js). */
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
