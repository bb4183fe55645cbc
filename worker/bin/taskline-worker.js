#!/usr/bin/env node
import { runCli } from '@taskline/shared/process';
import { main, runOptions } from '../dist/cli.js';

void runCli(main, runOptions);
