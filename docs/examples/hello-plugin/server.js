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
};
