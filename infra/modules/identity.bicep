// The user-assigned identity the Function App runs as: it reaches storage (the host's and the
// app's tables), Key Vault, Event Grid and Application Insights without any key.

@description('Name of the identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags put on the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
