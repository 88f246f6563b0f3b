// The server half of the "hello" management plug-in: the product and its task types, each
// with a JSON Schema for its settings. Load it with `garrison server --plugin PATH` or by
// putting this folder in DATA/plugins/.
export default {
  product: { id: 'hello', name: 'Hello', description: 'A worked example of a Garrison management plug-in' },
  taskTypes: [
    {
      id: 'greet',
      name: 'Greet',
      description: 'Writes a greeting to the run output and reports it as an event.',
      settingsSchema: {
        type: 'object',
        properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, shout: { type: 'boolean' } },
        required: ['name'],
        additionalProperties: false,
      },
      // Optional: rules the schema cannot say; return problems as sentences.
      validate: (settings) => (settings.name === 'nobody' ? ['greet somebody'] : []),
    },
  ],
  // Optional: how the product must be configured on devices (its policy type). Each top-level
  // property is one setting, with a complete set of defaults; `lockable` says which settings
  // a parent group's policy may lock (all of them when absent).
  policyType: {
    settingsSchema: {
      type: 'object',
      properties: {
        greeting: { type: 'string', minLength: 1, maxLength: 40 },
        punctuation: { enum: ['.', '!'] },
      },
      additionalProperties: false,
    },
    defaults: { greeting: 'hello', punctuation: '.' },
    lockable: ['greeting', 'punctuation'],
    // Optional: rules across settings, on the complete effective settings.
    validate: (settings) => (settings.greeting.toLowerCase() === 'goodbye' ? ['a greeting, not a farewell'] : []),
  },
};
