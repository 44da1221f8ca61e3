// The shape of the code, checked on every run: no import cycles (type-only ones included), small files and
// functions, one writer of a connection's state, no assertions on cluster state, and a test file at the
// mirrored path of each source file. Read from the sources with TypeScript's parser; nothing is run.
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, test } from 'node:test'
import ts from 'typescript'

const ROOT = join(__dirname, '..', '..')
const SOURCE_DIRS = ['lib', 'example']
const MAX_FILE_LINES = 350
const MAX_FUNCTION_LINES = 60
// The fields of a connection's life; only its state machine may assign them.
const STATE_FIELDS = new Set(['state', 'closedBy', 'closeCode', 'closeReason'])
const STATE_OWNER = 'lib/connection/connection.ts'
// lwsc's client connections are another class with a state of their own, written by themselves only.
const LWSC_STATE_OWNER = 'lib/lwsc/connection.ts'

function filesUnder (dir: string, suffix: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, suffix))
    else if (name.endsWith(suffix) && !name.endsWith('.d.ts')) out.push(path)
  }
  return out.sort()
}

const rel = (path: string): string => relative(ROOT, path).split('\\').join('/')
const sources = SOURCE_DIRS.flatMap((dir) => filesUnder(join(ROOT, dir), '.ts'))
const parsed = new Map(sources.map((path) => [path, ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true)]))

/** A relative specifier as the file it names, or null for a package. */
function resolveImport (from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null
  const base = resolve(dirname(from), specifier)
  for (const candidate of [`${base}.ts`, join(base, 'index.ts'), base]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate
  }
  return null
}

/**
 * Every module a file names: imports and re-exports, type-only or not, `import x = require('...')`,
 * `require('...')`, `import('...')` calls and types.
 */
function importsOf (file: ts.SourceFile): string[] {
  const found: string[] = []
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text)
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      found.push(node.moduleReference.expression.text)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text)
    } else if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteral(node.arguments[0]) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      found.push(node.arguments[0].text)
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  return found
}

function localGraph (): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const [path, file] of parsed) {
    const targets = importsOf(file).map((s) => resolveImport(path, s)).filter((t): t is string => t !== null && parsed.has(t))
    graph.set(path, [...new Set(targets)])
  }
  return graph
}

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
function cycles (graph: Map<string, string[]>): string[][] {
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const connect = (node: string): void => {
    indices.set(node, index)
    low.set(node, index++)
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        connect(next)
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) as number, indices.get(next) as number))
      }
    }
    if (low.get(node) !== indices.get(node)) return
    const component: string[] = []
    let member: string
    do {
      member = stack.pop() as string
      onStack.delete(member)
      component.push(member)
    } while (member !== node)
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component.map(rel).sort())
  }
  for (const node of graph.keys()) if (!indices.has(node)) connect(node)
  return found
}

const lineOf = (file: ts.SourceFile, pos: number): number => file.getLineAndCharacterOfPosition(pos).line + 1

function longFunctions (file: ts.SourceFile): string[] {
  const out: string[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body !== undefined) {
      const lines = lineOf(file, node.getEnd()) - lineOf(file, node.getStart(file)) + 1
      if (lines > MAX_FUNCTION_LINES) {
        const name = (node as ts.FunctionLikeDeclarationBase).name?.getText(file) ?? '(anonymous)'
        out.push(`${rel(file.fileName)}:${lineOf(file, node.getStart(file))} ${name}: ${lines} lines`)
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  return out
}

const ASSIGNMENTS = new Set([ts.SyntaxKind.EqualsToken, ts.SyntaxKind.PlusEqualsToken, ts.SyntaxKind.MinusEqualsToken, ts.SyntaxKind.QuestionQuestionEqualsToken, ts.SyntaxKind.BarBarEqualsToken])

/** `x.field = …`, `x.field++` and the like: where a property is written. */
function propertyWrites (file: ts.SourceFile): Array<{ object: string, field: string, line: number }> {
  const out: Array<{ object: string, field: string, line: number }> = []
  const record = (target: ts.Expression): void => {
    if (ts.isPropertyAccessExpression(target)) out.push({ object: target.expression.getText(file), field: target.name.text, line: lineOf(file, target.getStart(file)) })
  }
  const visit = (node: ts.Node): void => {
    if (ts.isBinaryExpression(node) && ASSIGNMENTS.has(node.operatorToken.kind)) record(node.left)
    else if ((ts.isPrefixUnaryExpression(node) || ts.isPostfixUnaryExpression(node)) && (node.operator === ts.SyntaxKind.PlusPlusToken || node.operator === ts.SyntaxKind.MinusMinusToken)) record(node.operand)
    ts.forEachChild(node, visit)
  }
  visit(file)
  return out
}

function nonNullAssertions (file: ts.SourceFile): string[] {
  const out: string[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isNonNullExpression(node)) out.push(`${rel(file.fileName)}:${lineOf(file, node.getStart(file))} ${node.getText(file)}`)
    ts.forEachChild(node, visit)
  }
  visit(file)
  return out
}

describe('code layout', () => {
  test('the sources are found', () => {
    assert.ok(sources.some((p) => rel(p) === 'lib/index.ts'), 'lib/index.ts is read')
    assert.ok(sources.some((p) => rel(p) === 'example/server.ts'), 'example/server.ts is read')
  })

  test('no import cycles in lib/ or example/, type-only imports included', () => {
    assert.deepEqual(cycles(localGraph()), [])
  })

  test('the cycle check finds a cycle when there is one', () => {
    const graph = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['d']], ['e', ['a']]])
    assert.deepEqual(cycles(graph).map((c) => c.length).sort(), [1, 3])
  })

  test('every form of import is seen', () => {
    const source = [
      "import a from './a'", "import type { B } from './b'", "export { c } from './c'", "export * from './d'",
      "import e = require('./e')", "const f = require('./f')", "const g = import('./g')", "type H = import('./h').H",
      "import './i'"
    ].join('\n')
    const file = ts.createSourceFile('probe.ts', source, ts.ScriptTarget.ES2022, true)
    assert.deepEqual(importsOf(file).sort(), ['./a', './b', './c', './d', './e', './f', './g', './h', './i'])
  })

  test(`no source file over ${MAX_FILE_LINES} lines`, () => {
    const long = [...parsed.values()].map((f) => ({ path: rel(f.fileName), lines: lineOf(f, f.getEnd()) })).filter((f) => f.lines > MAX_FILE_LINES)
    assert.deepEqual(long, [])
  })

  test(`no function or method over ${MAX_FUNCTION_LINES} lines`, () => {
    assert.deepEqual([...parsed.values()].flatMap(longFunctions), [])
  })

  test(`a connection's state fields are assigned in ${STATE_OWNER} only`, () => {
    const writes = [...parsed.values()]
      .filter((f) => rel(f.fileName).startsWith('lib/') && rel(f.fileName) !== STATE_OWNER)
      .flatMap((f) => propertyWrites(f)
        .filter((w) => STATE_FIELDS.has(w.field) && !(rel(f.fileName) === LWSC_STATE_OWNER && w.object === 'this'))
        .map((w) => `${rel(f.fileName)}:${w.line} ${w.object}.${w.field}`))
    assert.deepEqual(writes, [])
  })

  test('no field of the server is assigned from outside it', () => {
    const writes = [...parsed.values()]
      .filter((f) => rel(f.fileName).startsWith('lib/') && rel(f.fileName) !== 'lib/server.ts')
      .flatMap((f) => propertyWrites(f).filter((w) => /(^|\.)server$/.test(w.object)).map((w) => `${rel(f.fileName)}:${w.line} ${w.object}.${w.field}`))
    assert.deepEqual(writes, [])
  })

  test('no non-null assertions in lib/cluster/', () => {
    assert.deepEqual([...parsed.values()].filter((f) => rel(f.fileName).startsWith('lib/cluster/')).flatMap(nonNullAssertions), [])
  })

  test('every source file has a test at the mirrored path that imports it', () => {
    const missing: string[] = []
    for (const path of sources) {
      const testPath = join(ROOT, 'test', `${rel(path).replace(/\.ts$/, '')}.test.ts`)
      if (!existsSync(testPath)) {
        missing.push(`${rel(path)}: no ${rel(testPath)}`)
        continue
      }
      const file = ts.createSourceFile(testPath, readFileSync(testPath, 'utf8'), ts.ScriptTarget.ES2022, true)
      if (!importsOf(file).some((s) => resolveImport(testPath, s) === path)) missing.push(`${rel(testPath)} does not import ${rel(path)}`)
    }
    assert.deepEqual(missing, [])
  })
})
