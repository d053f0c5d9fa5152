// Flat config: typescript-eslint everywhere, Pulumi's rules on infrastructure code.
import tseslint from "typescript-eslint";
import pulumi from "@pulumi/eslint-plugin";

export default tseslint.config(
  { ignores: ["node_modules/**", "dist/**", ".data/**", "bench/results/**", "*.config.js"] },
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
    },
  },
  {
    // Tests read the loosely typed inputs Pulumi's mocks record.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    files: ["app/**/*.ts"],
    rules: {
      // The named `z` export keeps all of zod's locales in the Lambda bundle (~350 KiB).
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "ImportDeclaration[source.value='zod'][importKind!='type'] > ImportSpecifier[imported.name='z']",
          message: 'Use `import * as z from "zod"` (tree-shakable).',
        },
        {
          // Hono keeps c.header's in undici's Headers, which a response made with respond()
          // would not carry (app/src/http.ts setHeader says why the app keeps its own).
          selector: "CallExpression[callee.property.name='header'][callee.object.name='c']",
          message: "Use setHeader(c, name, value) from app/src/http.ts (and respond()).",
        },
      ],
    },
  },
  {
    files: ["infra/**/*.ts", "components/**/*.ts"],
    // Pulumi's rules look at types (is this an Output?), so they need the TypeScript project.
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@pulumi": pulumi },
    rules: {
      "@pulumi/no-output-in-template-literal": "error",
      "@pulumi/no-output-instance-in-template-literal": "error",
    },
  },
);
