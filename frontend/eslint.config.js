// ESLint for the dashboard (`npm run lint` runs it, then `prettier --check`): the
// recommended rules of ESLint, typescript-eslint and React Hooks (the rules of hooks, and
// the React Compiler's checks), and React Refresh's check that a module hot-reloads.
// Formatting is Prettier's job (.prettierrc), so no rule here is about layout.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import reactHooks from 'eslint-plugin-react-hooks';
import reactRefresh from 'eslint-plugin-react-refresh';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig([
  globalIgnores(['dist/', 'e2e/screenshots/']),
  {
    files: ['**/*.{ts,tsx}'],
    extends: [
      js.configs.recommended,
      tseslint.configs.recommended,
      reactHooks.configs.flat.recommended,
      reactRefresh.configs.vite,
    ],
    languageOptions: { globals: globals.browser },
  },
  {
    // The end-to-end tests and this file run in Node; the functions the tests pass to
    // `page.evaluate` run in the page, hence the browser's globals too.
    files: ['**/*.{js,mjs}'],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
]);
